//! What the kubelet knows about a pod's containers, and the pod status it derives from that — phase,
//! conditions and container statuses computed as the real kubelet's `getPhase` and
//! `Generate*Condition` functions do.

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, PodCondition, PodIP, PodStatus,
};
use std::net::Ipv4Addr;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// The simulated node's address: its processes run on this machine. Each pod has a loopback address
/// of its own (see [`super::addresses`]).
pub const LOCAL_IP: &str = "127.0.0.1";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

impl RestartPolicy {
    /// The pod's policy; the API server defaults it to `Always`.
    pub fn parse(policy: Option<&str>) -> RestartPolicy {
        match policy {
            Some("Never") => RestartPolicy::Never,
            Some("OnFailure") => RestartPolicy::OnFailure,
            _ => RestartPolicy::Always,
        }
    }

    /// Whether a container that ended with `exit_code` is started again.
    pub fn restarts(self, exit_code: i32) -> bool {
        match self {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => exit_code != 0,
            RestartPolicy::Never => false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    Pending,
    Running,
    Succeeded,
    Failed,
}

impl Phase {
    pub fn as_str(&self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Running => "Running",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
        }
    }

    pub fn is_terminal(&self) -> bool {
        matches!(self, Phase::Succeeded | Phase::Failed)
    }
}

/// How a container run ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Terminated {
    pub exit_code: i32,
    /// `Completed`, `Error`, `OOMKilled` or `StartError`.
    pub reason: String,
    pub message: Option<String>,
    /// `None` when the process never started (containerd then reports the Unix epoch).
    pub started_at: Option<Timestamp>,
    pub finished_at: Timestamp,
    pub container_id: String,
}

impl Terminated {
    /// The end of a process that ran: `Completed` for exit code 0, `Error` otherwise.
    pub fn exited(
        exit_code: i32,
        started_at: Timestamp,
        finished_at: Timestamp,
        container_id: String,
    ) -> Terminated {
        Terminated {
            exit_code,
            reason: if exit_code == 0 { "Completed" } else { "Error" }.to_owned(),
            message: None,
            started_at: Some(started_at),
            finished_at,
            container_id,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum RunState {
    Waiting {
        reason: String,
        message: Option<String>,
    },
    Running {
        started_at: Timestamp,
        container_id: String,
    },
    Terminated(Terminated),
}

impl RunState {
    pub fn waiting(reason: &str, message: Option<String>) -> RunState {
        RunState::Waiting {
            reason: reason.to_owned(),
            message,
        }
    }
}

/// One container as the kubelet tracks it.
#[derive(Clone, Debug)]
pub struct ContainerRecord {
    pub name: String,
    pub image: String,
    /// Set once the image was "pulled".
    pub image_id: Option<String>,
    pub state: RunState,
    pub last_terminated: Option<Terminated>,
    pub restart_count: i32,
    /// Its startup probe succeeded (or it has none) in the current run.
    pub started: bool,
    /// Its readiness probe passes (or it has none) in the current run.
    pub ready: bool,
}

impl ContainerRecord {
    pub fn new(name: &str, image: &str, waiting_reason: &str) -> ContainerRecord {
        ContainerRecord {
            name: name.to_owned(),
            image: image.to_owned(),
            image_id: None,
            state: RunState::waiting(waiting_reason, None),
            last_terminated: None,
            restart_count: 0,
            started: false,
            ready: false,
        }
    }

    fn is_running(&self) -> bool {
        matches!(self.state, RunState::Running { .. })
    }

    fn is_ready(&self) -> bool {
        self.is_running() && self.started && self.ready
    }

    fn succeeded(&self) -> bool {
        matches!(&self.state, RunState::Terminated(t) if t.exit_code == 0)
    }

    fn to_status(&self) -> ContainerStatus {
        let state = match &self.state {
            RunState::Waiting { reason, message } => ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some(reason.clone()),
                    message: message.clone(),
                }),
                ..ContainerState::default()
            },
            RunState::Running {
                started_at,
                container_id: _,
            } => ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: Some(Time(*started_at)),
                }),
                ..ContainerState::default()
            },
            RunState::Terminated(t) => terminated_state(t),
        };
        let container_id = match &self.state {
            RunState::Running { container_id, .. } => Some(container_id.clone()),
            RunState::Terminated(t) => Some(t.container_id.clone()),
            RunState::Waiting { .. } => None,
        };
        ContainerStatus {
            name: self.name.clone(),
            image: self.image.clone(),
            image_id: self.image_id.clone().unwrap_or_default(),
            container_id,
            ready: self.is_ready(),
            started: Some(self.is_running() && self.started),
            restart_count: self.restart_count,
            state: Some(state),
            last_state: Some(
                self.last_terminated
                    .as_ref()
                    .map(terminated_state)
                    .unwrap_or_default(),
            ),
            ..ContainerStatus::default()
        }
    }
}

fn terminated_state(t: &Terminated) -> ContainerState {
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code: t.exit_code,
            reason: Some(t.reason.clone()),
            message: t.message.clone(),
            started_at: Some(Time(t.started_at.unwrap_or(Timestamp::UNIX_EPOCH))),
            finished_at: Some(Time(t.finished_at)),
            container_id: Some(t.container_id.clone()),
            signal: None,
        }),
        ..ContainerState::default()
    }
}

/// Everything the kubelet knows about one pod, from which its status is derived.
#[derive(Clone, Debug)]
pub struct PodRuntime {
    pub restart_policy: RestartPolicy,
    pub init: Vec<ContainerRecord>,
    pub main: Vec<ContainerRecord>,
    pub start_time: Timestamp,
    /// The pod is being deleted: once every container stopped, its phase is terminal whatever the
    /// restart policy (the kubelet's `podIsTerminal`).
    pub terminating: bool,
    /// Conditions last published, so that `lastTransitionTime` moves only on a transition.
    pub conditions: Vec<PodCondition>,
    /// The pod's own loopback address.
    pub pod_ip: Ipv4Addr,
    /// The kubelet evicted the pod, with this message: it ends `Failed` with reason `Evicted`.
    pub evicted: Option<String>,
}

impl PodRuntime {
    pub fn container_mut(&mut self, init: bool, index: usize) -> Option<&mut ContainerRecord> {
        if init {
            self.init.get_mut(index)
        } else {
            self.main.get_mut(index)
        }
    }

    /// The kubelet's `getPhase`.
    pub fn phase(&self) -> Phase {
        if self.evicted.is_some() {
            return Phase::Failed;
        }
        let mut pending_init = 0;
        let mut failed_init = 0;
        for c in &self.init {
            match &c.state {
                RunState::Running { .. } => pending_init += 1,
                RunState::Terminated(t) => {
                    if t.exit_code != 0 {
                        failed_init += 1;
                    }
                }
                RunState::Waiting { .. } => match &c.last_terminated {
                    Some(last) if last.exit_code != 0 => failed_init += 1,
                    Some(_) => {}
                    None => pending_init += 1,
                },
            }
        }
        let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
        for c in &self.main {
            match &c.state {
                RunState::Running { .. } => running += 1,
                RunState::Terminated(t) => {
                    stopped += 1;
                    if t.exit_code == 0 {
                        succeeded += 1;
                    }
                }
                RunState::Waiting { .. } if c.last_terminated.is_some() => stopped += 1,
                RunState::Waiting { .. } => waiting += 1,
            }
        }
        if failed_init > 0 && (self.restart_policy == RestartPolicy::Never || self.terminating) {
            return Phase::Failed;
        }
        if pending_init > 0 || waiting > 0 {
            // A pod deleted before all its containers ran never reaches Succeeded.
            return if self.terminating && running == 0 && pending_init == 0 {
                Phase::Failed
            } else {
                Phase::Pending
            };
        }
        if running > 0 {
            return Phase::Running;
        }
        if stopped == self.main.len() {
            if self.terminating || self.restart_policy == RestartPolicy::Never {
                return if stopped == succeeded {
                    Phase::Succeeded
                } else {
                    Phase::Failed
                };
            }
            if self.restart_policy == RestartPolicy::Always {
                return Phase::Running;
            }
            return if stopped == succeeded {
                Phase::Succeeded
            } else {
                Phase::Running
            };
        }
        Phase::Pending
    }

    /// The pod status to publish; records the conditions for the next call.
    pub fn status_at(&mut self, now: Timestamp) -> PodStatus {
        let phase = self.phase();
        let conditions = self.conditions(&phase, now);
        self.conditions = conditions.clone();
        let pod_ip = self.pod_ip.to_string();
        PodStatus {
            phase: Some(phase.as_str().to_owned()),
            reason: self.evicted.as_ref().map(|_| "Evicted".to_owned()),
            message: self.evicted.clone(),
            conditions: Some(conditions),
            host_ip: Some(LOCAL_IP.to_owned()),
            host_ips: Some(vec![HostIP {
                ip: LOCAL_IP.to_owned(),
            }]),
            pod_ip: Some(pod_ip.clone()),
            pod_ips: Some(vec![PodIP { ip: pod_ip }]),
            start_time: Some(Time(self.start_time)),
            qos_class: Some("BestEffort".to_owned()),
            init_container_statuses: (!self.init.is_empty())
                .then(|| self.init.iter().map(ContainerRecord::to_status).collect()),
            container_statuses: Some(self.main.iter().map(ContainerRecord::to_status).collect()),
            ..PodStatus::default()
        }
    }

    fn conditions(&self, phase: &Phase, now: Timestamp) -> Vec<PodCondition> {
        let sandbox_ready = !phase.is_terminal();
        let initialized = self.initialized_condition(phase);
        // Without readiness gates, Ready is ContainersReady.
        let ready = self.containers_ready_condition(phase);
        let mut conditions = Vec::with_capacity(6);
        if let Some(message) = &self.evicted {
            // The condition the kubelet adds before it kills the pod's containers.
            conditions.push(self.condition(
                "DisruptionTarget",
                (
                    true,
                    Some("TerminationByKubelet".to_owned()),
                    Some(message.clone()),
                ),
                now,
            ));
        }
        conditions.extend([
            self.condition(
                "PodReadyToStartContainers",
                (sandbox_ready, None, None),
                now,
            ),
            self.condition("Initialized", initialized, now),
            self.condition("Ready", ready.clone(), now),
            self.condition("ContainersReady", ready, now),
            self.condition("PodScheduled", (true, None, None), now),
        ]);
        conditions
    }

    /// `GeneratePodInitializedCondition`.
    fn initialized_condition(&self, phase: &Phase) -> (bool, Option<String>, Option<String>) {
        if *phase == Phase::Succeeded {
            return (true, Some("PodCompleted".to_owned()), None);
        }
        let incomplete: Vec<&str> = self
            .init
            .iter()
            .filter(|c| !c.succeeded())
            .map(|c| c.name.as_str())
            .collect();
        if incomplete.is_empty() {
            return (true, None, None);
        }
        (
            false,
            Some("ContainersNotInitialized".to_owned()),
            Some(format!(
                "containers with incomplete status: [{}]",
                incomplete.join(" ")
            )),
        )
    }

    /// `GenerateContainersReadyCondition`: every container running, started and passing its
    /// readiness probe.
    fn containers_ready_condition(&self, phase: &Phase) -> (bool, Option<String>, Option<String>) {
        match phase {
            Phase::Succeeded => return (false, Some("PodCompleted".into()), None),
            Phase::Failed => return (false, Some("PodFailed".into()), None),
            _ => {}
        }
        let unready: Vec<&str> = self
            .main
            .iter()
            .filter(|c| !c.is_ready())
            .map(|c| c.name.as_str())
            .collect();
        if unready.is_empty() {
            return (true, None, None);
        }
        (
            false,
            Some("ContainersNotReady".to_owned()),
            Some(format!(
                "containers with unready status: [{}]",
                unready.join(" ")
            )),
        )
    }

    fn condition(
        &self,
        type_: &str,
        (status, reason, message): (bool, Option<String>, Option<String>),
        now: Timestamp,
    ) -> PodCondition {
        let status = if status { "True" } else { "False" }.to_owned();
        let since = self
            .conditions
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .and_then(|c| c.last_transition_time.clone())
            .unwrap_or(Time(now));
        PodCondition {
            type_: type_.to_owned(),
            status,
            reason,
            message,
            last_transition_time: Some(since),
            last_probe_time: None,
            observed_generation: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exited(code: i32) -> RunState {
        let now = Timestamp::now();
        RunState::Terminated(Terminated::exited(code, now, now, "containerd://x".into()))
    }

    fn pod(policy: RestartPolicy, init: Vec<RunState>, main: Vec<RunState>) -> PodRuntime {
        let record = |(i, state): (usize, RunState)| ContainerRecord {
            state,
            started: true,
            ready: true,
            ..ContainerRecord::new(&format!("c{i}"), "busybox", "ContainerCreating")
        };
        PodRuntime {
            restart_policy: policy,
            init: init.into_iter().enumerate().map(record).collect(),
            main: main.into_iter().enumerate().map(record).collect(),
            start_time: Timestamp::now(),
            terminating: false,
            conditions: vec![],
            pod_ip: Ipv4Addr::LOCALHOST,
            evicted: None,
        }
    }

    fn running() -> RunState {
        RunState::Running {
            started_at: Timestamp::now(),
            container_id: "containerd://x".into(),
        }
    }

    fn waiting(reason: &str) -> RunState {
        RunState::waiting(reason, None)
    }

    #[test]
    fn phases_follow_the_kubelet() {
        use RestartPolicy::*;
        let cases = [
            (
                Never,
                vec![],
                vec![waiting("ContainerCreating")],
                Phase::Pending,
            ),
            (Never, vec![], vec![running(), exited(0)], Phase::Running),
            (Never, vec![], vec![exited(0), exited(0)], Phase::Succeeded),
            (Never, vec![], vec![exited(0), exited(3)], Phase::Failed),
            (OnFailure, vec![], vec![exited(3)], Phase::Running),
            (OnFailure, vec![], vec![exited(0)], Phase::Succeeded),
            (Always, vec![], vec![exited(0)], Phase::Running),
            (
                Never,
                vec![exited(1)],
                vec![waiting("PodInitializing")],
                Phase::Failed,
            ),
            (
                OnFailure,
                vec![exited(1)],
                vec![waiting("PodInitializing")],
                Phase::Pending,
            ),
            (
                Never,
                vec![running()],
                vec![waiting("PodInitializing")],
                Phase::Pending,
            ),
            (Never, vec![exited(0)], vec![running()], Phase::Running),
        ];
        for (i, (policy, init, main, want)) in cases.into_iter().enumerate() {
            assert_eq!(pod(policy, init, main).phase(), want, "case {i}");
        }
    }

    #[test]
    fn crash_looping_container_counts_as_stopped() {
        let mut p = pod(
            RestartPolicy::Always,
            vec![],
            vec![waiting("CrashLoopBackOff")],
        );
        p.main[0].last_terminated = Some(Terminated::exited(
            1,
            Timestamp::now(),
            Timestamp::now(),
            "containerd://x".into(),
        ));
        assert_eq!(p.phase(), Phase::Running);
    }

    #[test]
    fn a_deleted_pod_ends_terminal() {
        let mut p = pod(RestartPolicy::Always, vec![], vec![exited(143)]);
        p.terminating = true;
        assert_eq!(p.phase(), Phase::Failed);
    }

    #[test]
    fn conditions_name_unready_and_uninitialized_containers() {
        let mut p = pod(
            RestartPolicy::Never,
            vec![exited(1)],
            vec![waiting("PodInitializing")],
        );
        let status = p.status_at(Timestamp::now());
        let conditions = status.conditions.expect("conditions");
        let get = |t: &str| {
            conditions
                .iter()
                .find(|c| c.type_ == t)
                .cloned()
                .expect("condition")
        };
        assert_eq!(get("Initialized").status, "False");
        assert_eq!(
            get("Initialized").message.as_deref(),
            Some("containers with incomplete status: [c0]")
        );
        assert_eq!(get("Ready").reason.as_deref(), Some("PodFailed"));
        assert_eq!(get("PodScheduled").status, "True");
        assert_eq!(status.phase.as_deref(), Some("Failed"));
    }

    #[test]
    fn transition_time_moves_only_on_a_transition() {
        let mut p = pod(RestartPolicy::Never, vec![], vec![running()]);
        let t0 = Timestamp::from_second(1_000).expect("time");
        let t1 = Timestamp::from_second(2_000).expect("time");
        let first = p.status_at(t0).conditions.expect("conditions");
        let second = p.status_at(t1).conditions.expect("conditions");
        assert_eq!(first, second);
        p.main[0].state = exited(0);
        let third = p.status_at(t1).conditions.expect("conditions");
        let ready = third.iter().find(|c| c.type_ == "Ready").expect("ready");
        assert_eq!(ready.last_transition_time, Some(Time(t1)));
        let scheduled = third
            .iter()
            .find(|c| c.type_ == "PodScheduled")
            .expect("scheduled");
        assert_eq!(scheduled.last_transition_time, Some(Time(t0)));
    }
}
