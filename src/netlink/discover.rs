//! Pod network namespace discovery: pod uid -> netns path.
//!
//! 1. CNI cache (primary): kubelet runs the loopback plugin for every non-hostNetwork
//!    pod, and libcni caches each result as `<root>/<network>-<containerId>-lo`
//!    (`kind: cniCacheV1`). Its `cniArgs` carry `K8S_POD_UID` / `K8S_POD_NAMESPACE` /
//!    `K8S_POD_NAME` and `result.interfaces[].sandbox` is the netns path. Files of other
//!    networks, unreadable files and garbage are skipped (debug log), never fatal.
//!    When a pod has several (a recreated sandbox), the newest whose netns exists wins.
//! 2. Netns dir: a file under the netns dir whose name contains the pod uid (runtimes
//!    and test setups that name the netns after the pod).
//! 3. `/proc/<pid>/ns/net` of a process whose cgroup path names the pod
//!    (`pod<uid>`, with `-` or `_`), mapped back to a netns-dir file with the same inode
//!    when there is one (that path outlives the process). A process in the host netns
//!    (hostNetwork pods) is skipped.
//!
//! Must not: enter namespaces or write anything; fail because of one bad file.
use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Deserialize;
use tracing::debug;

/// Where to look. All roots are configurable so tests and the sandbox can point them
/// at their own directories.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoveryConfig {
    /// CNI cache results directory (default `/var/lib/cni/results`).
    pub cni_cache: PathBuf,
    /// Named netns directory (default `/var/run/netns`).
    pub netns_dir: PathBuf,
    /// procfs root (default `/proc`); `None` disables the `/proc` fallback.
    pub proc_root: Option<PathBuf>,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        DiscoveryConfig {
            cni_cache: PathBuf::from("/var/lib/cni/results"),
            netns_dir: PathBuf::from("/var/run/netns"),
            proc_root: Some(PathBuf::from("/proc")),
        }
    }
}

/// Which source found a pod's netns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetnsSource {
    CniCache,
    NetnsDir,
    Proc,
}

/// One discovered pod sandbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodNetns {
    pub uid: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub netns: PathBuf,
    pub source: NetnsSource,
}

/// Discovered pods, indexed by pod uid.
#[derive(Clone, Debug, Default)]
pub struct Discovery {
    pub by_uid: HashMap<String, PodNetns>,
    /// Files skipped because they were unreadable or not a usable `-lo` cache entry.
    pub skipped_files: usize,
    /// Every usable CNI cache file -> the uid it names (so the file's removal can be
    /// matched to its pod later).
    pub cache_files: HashMap<PathBuf, String>,
}

impl Discovery {
    pub fn get(&self, uid: &str) -> Option<&PodNetns> {
        self.by_uid.get(uid)
    }
    pub fn len(&self) -> usize {
        self.by_uid.len()
    }
    pub fn is_empty(&self) -> bool {
        self.by_uid.is_empty()
    }
}

#[derive(Deserialize)]
struct CacheFile {
    kind: String,
    #[serde(rename = "ifName", default)]
    if_name: Option<String>,
    #[serde(rename = "cniArgs", default)]
    cni_args: Vec<Vec<String>>,
    #[serde(default)]
    result: Option<CacheResult>,
}

#[derive(Deserialize)]
struct CacheResult {
    #[serde(default)]
    interfaces: Vec<CacheInterface>,
}

#[derive(Deserialize)]
struct CacheInterface {
    #[serde(default)]
    sandbox: Option<String>,
}

/// Parses one CNI cache file's content; None when it is not a usable loopback entry.
pub fn parse_cni_cache(bytes: &[u8]) -> Option<PodNetns> {
    let f: CacheFile = serde_json::from_slice(bytes).ok()?;
    if f.kind != "cniCacheV1" || f.if_name.as_deref().is_some_and(|n| n != "lo") {
        return None;
    }
    let arg = |k: &str| {
        f.cni_args
            .iter()
            .find(|kv| kv.len() == 2 && kv[0] == k)
            .map(|kv| kv[1].clone())
    };
    let uid = arg("K8S_POD_UID").filter(|u| !u.is_empty())?;
    let netns = f
        .result?
        .interfaces
        .into_iter()
        .find_map(|i| i.sandbox.filter(|s| !s.is_empty()))?;
    Some(PodNetns {
        uid,
        namespace: arg("K8S_POD_NAMESPACE"),
        name: arg("K8S_POD_NAME"),
        netns: PathBuf::from(netns),
        source: NetnsSource::CniCache,
    })
}

/// Scans all sources. Never fails: unreadable roots just contribute nothing.
pub fn discover(config: &DiscoveryConfig) -> Discovery {
    let mut out = Discovery::default();
    scan_cni_cache(&config.cni_cache, &mut out);
    let netns_files = list_dir(&config.netns_dir);
    if let Some(proc_root) = &config.proc_root {
        scan_proc(proc_root, &netns_files, &mut out);
    }
    scan_netns_dir(&netns_files, &mut out);
    debug!(
        pods = out.len(),
        skipped_files = out.skipped_files,
        "netns discovery done"
    );
    out
}

fn list_dir(dir: &Path) -> Vec<PathBuf> {
    match fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(|e| e.ok()).map(|e| e.path()).collect(),
        Err(e) => {
            debug!(dir = %dir.display(), error = %e, "cannot list directory");
            Vec::new()
        }
    }
}

fn scan_cni_cache(root: &Path, out: &mut Discovery) {
    // (uid) -> (netns exists, mtime) of the entry chosen so far.
    let mut chosen: HashMap<String, (bool, SystemTime)> = HashMap::new();
    for path in list_dir(root) {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !name.ends_with("-lo") {
            continue;
        }
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) => {
                debug!(file = %path.display(), error = %e, "skipping unreadable CNI cache file");
                out.skipped_files += 1;
                continue;
            }
        };
        let Some(pod) = parse_cni_cache(&bytes) else {
            debug!(file = %path.display(), "skipping CNI cache file that is not a loopback result");
            out.skipped_files += 1;
            continue;
        };
        out.cache_files.insert(path.clone(), pod.uid.clone());
        let exists = pod.netns.exists();
        let mtime = fs::metadata(&path)
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let better = match chosen.get(&pod.uid) {
            None => true,
            Some(&(e, t)) => (exists, mtime) > (e, t),
        };
        if better {
            chosen.insert(pod.uid.clone(), (exists, mtime));
            out.by_uid.insert(pod.uid.clone(), pod);
        }
    }
}

fn scan_netns_dir(files: &[PathBuf], out: &mut Discovery) {
    // Only for uids we do not know yet: look for files named after a known-shape uid.
    for path in files {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if let Some(uid) = find_uid(name)
            && !out.by_uid.contains_key(&uid)
        {
            out.by_uid.insert(
                uid.clone(),
                PodNetns {
                    uid,
                    namespace: None,
                    name: None,
                    netns: path.clone(),
                    source: NetnsSource::NetnsDir,
                },
            );
        }
    }
}

/// Finds a Kubernetes uid (8-4-4-4-12 hex, `-` or `_` separated) inside `s`.
pub fn find_uid(s: &str) -> Option<String> {
    let b = s.as_bytes();
    if b.len() < 36 {
        return None;
    }
    'outer: for start in 0..=b.len() - 36 {
        for (i, &c) in b[start..start + 36].iter().enumerate() {
            let ok = match i {
                8 | 13 | 18 | 23 => c == b'-' || c == b'_',
                _ => c.is_ascii_hexdigit(),
            };
            if !ok {
                continue 'outer;
            }
        }
        return Some(s[start..start + 36].replace('_', "-").to_ascii_lowercase());
    }
    None
}

fn scan_proc(proc_root: &Path, netns_files: &[PathBuf], out: &mut Discovery) {
    let host_ino = fs::metadata(proc_root.join("1/ns/net"))
        .ok()
        .map(|m| (m.dev(), m.ino()));
    let by_ino: HashMap<(u64, u64), &PathBuf> = netns_files
        .iter()
        .filter_map(|p| fs::metadata(p).ok().map(|m| ((m.dev(), m.ino()), p)))
        .collect();
    for dir in list_dir(proc_root) {
        let is_pid = dir
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.bytes().all(|c| c.is_ascii_digit()));
        if !is_pid {
            continue;
        }
        let Ok(cgroup) = fs::read_to_string(dir.join("cgroup")) else {
            continue;
        };
        let Some(uid) = cgroup
            .split(['/', ':', '\n'])
            .filter_map(|seg| seg.find("pod").map(|i| &seg[i + 3..]))
            .find_map(find_uid)
        else {
            continue;
        };
        if out.by_uid.contains_key(&uid) {
            continue;
        }
        let ns = dir.join("ns/net");
        let Ok(meta) = fs::metadata(&ns) else {
            continue;
        };
        let key = (meta.dev(), meta.ino());
        if Some(key) == host_ino {
            continue; // hostNetwork pod
        }
        let (netns, source) = match by_ino.get(&key) {
            Some(p) => ((*p).clone(), NetnsSource::NetnsDir),
            None => (ns, NetnsSource::Proc),
        };
        out.by_uid.insert(
            uid.clone(),
            PodNetns {
                uid,
                namespace: None,
                name: None,
                netns,
                source,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = r#"{"kind":"cniCacheV1","containerId":"501b","ifName":"lo",
      "networkName":"cni-loopback",
      "cniArgs":[["K8S_POD_NAMESPACE","kube-system"],["K8S_POD_NAME","calico-kube"],
        ["K8S_POD_INFRA_CONTAINER_ID","501b"],["K8S_POD_UID","174eecc3-58fa-42d1-8501-7f9004a28b76"],
        ["IgnoreUnknown","1"]],
      "result":{"cniVersion":"0.3.1","dns":{},"interfaces":[{"mac":"00:00:00:00:00:00","name":"lo",
        "sandbox":"/var/run/netns/cni-219052a8-dc07-14ad-2249-d380a989e501"}],
        "ips":[{"address":"127.0.0.1/8","interface":0,"version":""}]}}"#;

    #[test]
    fn parses_the_seed_format() {
        let p = parse_cni_cache(SEED.as_bytes()).unwrap();
        assert_eq!(p.uid, "174eecc3-58fa-42d1-8501-7f9004a28b76");
        assert_eq!(p.namespace.as_deref(), Some("kube-system"));
        assert_eq!(p.name.as_deref(), Some("calico-kube"));
        assert_eq!(
            p.netns,
            PathBuf::from("/var/run/netns/cni-219052a8-dc07-14ad-2249-d380a989e501")
        );
    }

    #[test]
    fn rejects_other_files() {
        assert!(parse_cni_cache(b"garbage").is_none());
        assert!(parse_cni_cache(b"{}").is_none());
        let eth = SEED.replace(r#""ifName":"lo""#, r#""ifName":"eth0""#);
        assert!(parse_cni_cache(eth.as_bytes()).is_none());
        let no_uid = SEED.replace("K8S_POD_UID", "X");
        assert!(parse_cni_cache(no_uid.as_bytes()).is_none());
        let no_sandbox = SEED.replace("sandbox", "elsewhere");
        assert!(parse_cni_cache(no_sandbox.as_bytes()).is_none());
    }

    #[test]
    fn finds_uids_in_names_and_cgroups() {
        assert_eq!(
            find_uid("kubepods-besteffort-pod174eecc3_58fa_42d1_8501_7f9004a28b76.slice")
                .as_deref(),
            Some("174eecc3-58fa-42d1-8501-7f9004a28b76")
        );
        assert_eq!(find_uid("cni-219052a8"), None);
    }
}
