//! Selectors: which processes the probe watches. Exact comms, cgroups and pid
//! trees are enforced in the kernel (maps read by the exec/fork programs);
//! glob patterns on comm/exe and pod uids are matched here on exec events.
//! Descendants of a watched process are always watched.

use std::path::PathBuf;

use crate::events::ProcessEvent;

/// One rule saying "watch these processes".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// Every process but the probe itself.
    All,
    /// A process and all its descendants (existing and future).
    PidTree(u32),
    /// comm (the 15-byte task name); `*` and `?` globs are matched in userspace, plain names in the kernel.
    Comm(String),
    /// The executable path passed to exec, with `*` and `?` globs.
    Exe(String),
    /// A cgroup v2 directory, e.g. /sys/fs/cgroup/system.slice/agent.service (matched in the kernel).
    Cgroup(PathBuf),
    /// A Kubernetes pod uid, as found in /proc/PID/cgroup.
    PodUid(String),
}

impl Selector {
    /// Parse `all`, `pid:N`, `comm:NAME`, `exe:PATTERN`, `cgroup:PATH` or `pod:UID`.
    pub fn parse(s: &str) -> Result<Selector, SelectorError> {
        if s == "all" {
            return Ok(Selector::All);
        }
        let (kind, value) = s.split_once(':').ok_or_else(|| SelectorError::Syntax(s.to_string()))?;
        if value.is_empty() {
            return Err(SelectorError::Syntax(s.to_string()));
        }
        Ok(match kind {
            "pid" => Selector::PidTree(value.parse().map_err(|_| SelectorError::BadPid(value.to_string()))?),
            "comm" => Selector::Comm(value.to_string()),
            "exe" => Selector::Exe(value.to_string()),
            "cgroup" => Selector::Cgroup(PathBuf::from(value)),
            "pod" => Selector::PodUid(value.to_string()),
            _ => return Err(SelectorError::Syntax(s.to_string())),
        })
    }

    /// True when this selector needs exec events of every process (matched in userspace).
    pub fn needs_userspace_matching(&self) -> bool {
        match self {
            Selector::Comm(c) => has_glob(c) || c.len() > 15,
            Selector::Exe(_) | Selector::PodUid(_) => true,
            _ => false,
        }
    }

    /// Does this exec'd (or /proc-found) process match? Pid trees and cgroups are the kernel's job.
    pub fn matches(&self, p: &ProcessEvent) -> bool {
        match self {
            Selector::All => true,
            Selector::Comm(pat) => glob_match(pat, &p.comm),
            Selector::Exe(pat) => glob_match(pat, &p.exe),
            Selector::PodUid(uid) => p.pod_uid.as_deref() == Some(uid.as_str()),
            Selector::PidTree(_) | Selector::Cgroup(_) => false,
        }
    }
}

/// A selector that cannot be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SelectorError {
    #[error("selector {0:?} is not one of all, pid:N, comm:NAME, exe:PATTERN, cgroup:PATH, pod:UID")]
    Syntax(String),
    #[error("selector pid:{0} is not a process id")]
    BadPid(String),
}

fn has_glob(s: &str) -> bool {
    s.contains('*') || s.contains('?')
}

/// Shell-style matching of `*` (any run) and `?` (one char); no character classes.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || Some(&c) == t.get(ti) => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..).is_some_and(|rest| rest.iter().all(|&c| c == '*'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("python3*", "python3.11"));
        assert!(glob_match("*/curl", "/usr/bin/curl"));
        assert!(glob_match("c?rl", "curl"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("curl", "curly"));
        assert!(!glob_match("*/curl", "/usr/bin/wget"));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b*c", "axxbyy"));
    }

    #[test]
    fn parsing() {
        assert_eq!(Selector::parse("pid:42"), Ok(Selector::PidTree(42)));
        assert_eq!(Selector::parse("comm:python3"), Ok(Selector::Comm("python3".into())));
        assert_eq!(Selector::parse("all"), Ok(Selector::All));
        assert!(matches!(Selector::parse("pid:x"), Err(SelectorError::BadPid(_))));
        assert!(matches!(Selector::parse("nope"), Err(SelectorError::Syntax(_))));
        assert!(Selector::parse("exe:/usr/bin/*").unwrap().needs_userspace_matching());
        assert!(!Selector::parse("comm:curl").unwrap().needs_userspace_matching());
    }
}
