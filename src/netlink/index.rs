//! Pod uid -> network namespace, kept current from file events instead of rescans: a full
//! [`discover`] when the reconciler starts watching (and after an inotify overflow), then
//! one CNI cache file parsed per event, and netns-dir names matched as they appear.
//!
//! Must not: touch the kernel; decide which pods to program (it only answers lookups and
//! says which uids an event concerns).
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tracing::debug;

use super::discover::{
    Discovery, DiscoveryConfig, NetnsSource, PodNetns, discover, find_uid, parse_cni_cache,
};

/// The current view of where pods' network namespaces are.
#[derive(Debug, Default)]
pub struct NetnsIndex {
    config: DiscoveryConfig,
    by_uid: HashMap<String, PodNetns>,
    /// CNI cache file -> the uid it named (a removed file can no longer be read).
    files: HashMap<PathBuf, String>,
}

impl NetnsIndex {
    /// An index filled by a full scan of `config`'s sources.
    pub fn scan(config: DiscoveryConfig) -> Self {
        let mut index = NetnsIndex {
            config,
            ..Default::default()
        };
        index.rescan();
        index
    }

    /// Replaces the content with a full scan; returns the uids whose netns changed.
    pub fn rescan(&mut self) -> Vec<String> {
        let Discovery {
            by_uid,
            cache_files,
            ..
        } = discover(&self.config);
        let mut changed: Vec<String> = by_uid
            .iter()
            .filter(|(uid, p)| self.by_uid.get(*uid).map(|o| &o.netns) != Some(&p.netns))
            .map(|(uid, _)| uid.clone())
            .collect();
        changed.extend(
            self.by_uid
                .keys()
                .filter(|uid| !by_uid.contains_key(*uid))
                .cloned(),
        );
        self.by_uid = by_uid;
        self.files = cache_files;
        changed
    }

    pub fn config(&self) -> &DiscoveryConfig {
        &self.config
    }

    /// Where pod `uid`'s netns is, if known.
    pub fn get(&self, uid: &str) -> Option<&Path> {
        self.by_uid.get(uid).map(|p| p.netns.as_path())
    }

    pub fn len(&self) -> usize {
        self.by_uid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_uid.is_empty()
    }

    /// A file appeared or changed at `path`; returns the uid whose netns it (newly) gives.
    pub fn file_up(&mut self, path: &Path) -> Option<String> {
        let dir = path.parent()?;
        let name = path.file_name()?.to_str()?;
        if dir == self.config.cni_cache {
            if !name.ends_with("-lo") {
                return None;
            }
            let bytes = std::fs::read(path)
                .map_err(
                    |e| debug!(file = %path.display(), error = %e, "unreadable CNI cache file"),
                )
                .ok()?;
            let Some(pod) = parse_cni_cache(&bytes) else {
                debug!(file = %path.display(), "CNI cache file is not a loopback result");
                return None;
            };
            self.files.insert(path.to_path_buf(), pod.uid.clone());
            // As in a full scan: an entry whose netns exists beats one whose netns is gone;
            // otherwise the newest file (this one) wins.
            let keep_old = self.by_uid.get(&pod.uid).is_some_and(|old| {
                old.netns != pod.netns && old.netns.exists() && !pod.netns.exists()
            });
            if keep_old || self.get(&pod.uid) == Some(pod.netns.as_path()) {
                return None;
            }
            let uid = pod.uid.clone();
            self.by_uid.insert(uid.clone(), pod);
            return Some(uid);
        }
        if dir == self.config.netns_dir {
            let uid = find_uid(name)?;
            if self.by_uid.get(&uid).is_some_and(|p| p.netns.exists()) {
                return None;
            }
            self.by_uid.insert(
                uid.clone(),
                PodNetns {
                    uid: uid.clone(),
                    namespace: None,
                    name: None,
                    netns: path.to_path_buf(),
                    source: NetnsSource::NetnsDir,
                },
            );
            return Some(uid);
        }
        None
    }

    /// A file was removed at `path`; returns the uids whose netns is now unknown.
    pub fn file_gone(&mut self, path: &Path) -> Vec<String> {
        let mut gone = Vec::new();
        if let Some(uid) = self.files.remove(path)
            && self.by_uid.get(&uid).is_some_and(|p| !p.netns.exists())
        {
            self.by_uid.remove(&uid);
            gone.push(uid);
        }
        let by_path: Vec<String> = self
            .by_uid
            .iter()
            .filter(|(_, p)| p.netns == path)
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in by_path {
            self.by_uid.remove(&uid);
            gone.push(uid);
        }
        gone
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const UID: &str = "174eecc3-58fa-42d1-8501-7f9004a28b76";

    fn cache(netns: &Path) -> String {
        serde_json::json!({
            "kind": "cniCacheV1", "ifName": "lo",
            "cniArgs": [["K8S_POD_NAMESPACE", "ns"], ["K8S_POD_NAME", "p"], ["K8S_POD_UID", UID]],
            "result": {"interfaces": [{"name": "lo", "sandbox": netns}]}
        })
        .to_string()
    }

    fn setup() -> (tempfile::TempDir, NetnsIndex) {
        let tmp = tempfile::tempdir().unwrap();
        for d in ["cni", "netns"] {
            std::fs::create_dir(tmp.path().join(d)).unwrap();
        }
        let index = NetnsIndex::scan(DiscoveryConfig {
            cni_cache: tmp.path().join("cni"),
            netns_dir: tmp.path().join("netns"),
            proc_root: None,
        });
        (tmp, index)
    }

    #[test]
    fn a_cni_file_appearing_and_going_is_followed() {
        let (tmp, mut index) = setup();
        assert!(index.is_empty());
        let ns = tmp.path().join("netns/cni-1");
        std::fs::write(&ns, "").unwrap();
        let file = tmp.path().join("cni/cni-loopback-abc-lo");
        std::fs::write(&file, cache(&ns)).unwrap();
        assert_eq!(index.file_up(&file), Some(UID.to_string()));
        assert_eq!(index.get(UID), Some(ns.as_path()));
        // The same event again changes nothing.
        assert_eq!(index.file_up(&file), None);
        // Cache file gone while the netns still exists: still known.
        std::fs::remove_file(&file).unwrap();
        assert!(index.file_gone(&file).is_empty());
        assert_eq!(index.get(UID), Some(ns.as_path()));
        // The netns file goes: forgotten.
        std::fs::remove_file(&ns).unwrap();
        assert_eq!(index.file_gone(&ns), vec![UID.to_string()]);
        assert_eq!(index.get(UID), None);
    }

    #[test]
    fn other_files_are_ignored_and_netns_dir_names_count() {
        let (tmp, mut index) = setup();
        let junk = tmp.path().join("cni/cni-loopback-abc-eth0");
        std::fs::write(&junk, "{}").unwrap();
        assert_eq!(index.file_up(&junk), None);
        let garbage = tmp.path().join("cni/x-lo");
        std::fs::write(&garbage, "not json").unwrap();
        assert_eq!(index.file_up(&garbage), None);
        let elsewhere = tmp.path().join("other");
        std::fs::write(&elsewhere, "").unwrap();
        assert_eq!(index.file_up(&elsewhere), None);
        let named = tmp.path().join(format!("netns/pod-{UID}"));
        std::fs::write(&named, "").unwrap();
        assert_eq!(index.file_up(&named), Some(UID.to_string()));
        assert_eq!(index.get(UID), Some(named.as_path()));
    }

    #[test]
    fn a_recreated_sandbox_moves_the_pod() {
        let (tmp, mut index) = setup();
        let (ns1, ns2) = (tmp.path().join("netns/a"), tmp.path().join("netns/b"));
        std::fs::write(&ns1, "").unwrap();
        let f1 = tmp.path().join("cni/one-lo");
        std::fs::write(&f1, cache(&ns1)).unwrap();
        assert!(index.rescan().contains(&UID.to_string()));
        assert_eq!(index.get(UID), Some(ns1.as_path()));
        // New sandbox: new netns and cache file; the old netns is gone.
        std::fs::remove_file(&ns1).unwrap();
        std::fs::write(&ns2, "").unwrap();
        let f2 = tmp.path().join("cni/two-lo");
        std::fs::write(&f2, cache(&ns2)).unwrap();
        assert_eq!(index.file_up(&f2), Some(UID.to_string()));
        assert_eq!(index.get(UID), Some(ns2.as_path()));
        // The old cache file's removal does not forget the new netns.
        std::fs::remove_file(&f1).unwrap();
        assert!(index.file_gone(&f1).is_empty());
        assert_eq!(index.get(UID), Some(ns2.as_path()));
    }
}
