//! The agent a chain belongs to: a stable key (node, container or pod when present, executable,
//! root process identity) and the `AgentRef` printed in every chain.

use std::collections::BTreeMap;

use chainwatch_schemas::AgentRef;

use crate::process_tree::{ProcInfo, ProcKey};

/// Attribute names that carry the Kubernetes namespace when the parser or probe knows it.
const NAMESPACE_ATTRIBUTES: [&str; 2] = ["k8s.namespace.name", "namespace"];

/// The agent of a root process. `info` is what the process tree knows (may be nothing).
pub fn agent_ref(
    node: &str,
    root: ProcKey,
    info: Option<&ProcInfo>,
    fallback_comm: &str,
    attributes: &BTreeMap<String, String>,
    team_label: &str,
) -> AgentRef {
    let exe = info.map(|i| i.exe.clone()).filter(|e| !e.is_empty()).unwrap_or_else(|| fallback_comm.to_string());
    let comm = info.map(|i| i.comm.clone()).filter(|c| !c.is_empty()).unwrap_or_else(|| fallback_comm.to_string());
    let container_id = info.and_then(|i| i.container_id.clone());
    let pod_uid = info.and_then(|i| i.pod_uid.clone());
    let namespace = NAMESPACE_ATTRIBUTES.iter().find_map(|a| attributes.get(*a)).cloned();
    let team = attributes
        .get(team_label)
        .cloned()
        .or_else(|| (team_label == "namespace").then(|| namespace.clone()).flatten());
    let agent_key = agent_key(node, container_id.as_deref(), pod_uid.as_deref(), &exe, root);
    AgentRef {
        node: node.to_string(),
        agent_key,
        tgid: root.tgid,
        process_start_ns: root.start_ns,
        exe,
        comm,
        container_id,
        pod_uid,
        namespace,
        team,
    }
}

/// `node/[pod:<uid>|ctr:<id>/]<exe basename>/<tgid>@<start_ns>`: the same process is the same
/// agent in every chain, a restarted process is another agent.
pub fn agent_key(node: &str, container_id: Option<&str>, pod_uid: Option<&str>, exe: &str, root: ProcKey) -> String {
    let base = exe.rsplit('/').next().unwrap_or(exe);
    let place = match (pod_uid, container_id) {
        (Some(p), _) => format!("pod:{p}/"),
        (None, Some(c)) => format!("ctr:{}/", c.get(..12).unwrap_or(c)),
        (None, None) => String::new(),
    };
    format!("{node}/{place}{base}/{}@{}", root.tgid, root.start_ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_node_place_exe_and_process() {
        let root = ProcKey { node: 0, tgid: 42, start_ns: 7 };
        assert_eq!(agent_key("n1", None, None, "/usr/bin/python3", root), "n1/python3/42@7");
        assert_eq!(agent_key("n1", Some("abcdef0123456789"), None, "python3", root), "n1/ctr:abcdef012345/python3/42@7");
        assert_eq!(agent_key("n1", Some("c"), Some("u-1"), "python3", root), "n1/pod:u-1/python3/42@7");
        let mut attrs = BTreeMap::new();
        attrs.insert("k8s.namespace.name".to_string(), "support".to_string());
        let r = agent_ref("n1", root, None, "python3", &attrs, "namespace");
        assert_eq!((r.namespace.as_deref(), r.team.as_deref()), (Some("support"), Some("support")));
    }
}
