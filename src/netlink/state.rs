//! Node-local state: the original default routes we replaced under `defaultRoute`, one
//! JSON file per pod (`<state dir>/<pod uid>.json`), so removing the rule restores them,
//! also after a controller restart or crash.
//!
//! Crash safety: a file is written to a temp file in the same directory, fsynced, renamed
//! over the old one and the directory fsynced, so a reader sees the old or the new
//! content, never a torn one. Originals are recorded *before* the kernel is touched, so
//! a crash between the two leaves a record of a route that is still there, which is
//! harmless (it is recorded once; records are de-duplicated).
//!
//! Must not: hold anything but original routes; accept a uid that is not a plain file name.
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::NetlinkError;
use super::kernel::KernelRoute;
use crate::plan::pod::PodKey;

/// One original route and the name of its interface (ifindexes change when a link is
/// recreated; the name is what we resolve again at restore time).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RecordedRoute {
    pub route: KernelRoute,
    pub dev: String,
}

/// The recorded originals of one pod.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodState {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// The netns the originals were recorded in (for logs and pruning).
    #[serde(default)]
    pub netns: Option<PathBuf>,
    #[serde(default)]
    pub v4: Vec<RecordedRoute>,
    #[serde(default)]
    pub v6: Vec<RecordedRoute>,
}

impl PodState {
    pub fn new(pod: &PodKey) -> Self {
        PodState {
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
            uid: pod.uid.clone(),
            ..Default::default()
        }
    }

    /// Recorded originals of one family.
    pub fn family(&self, v6: bool) -> &[RecordedRoute] {
        if v6 { &self.v6 } else { &self.v4 }
    }

    pub fn family_mut(&mut self, v6: bool) -> &mut Vec<RecordedRoute> {
        if v6 { &mut self.v6 } else { &mut self.v4 }
    }

    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }
}

/// The directory holding the state files.
#[derive(Clone, Debug)]
pub struct StateDir {
    dir: PathBuf,
}

fn check_uid(uid: &str) -> Result<(), NetlinkError> {
    let ok = !uid.is_empty()
        && uid.len() <= 128
        && uid
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(NetlinkError::BadUid(uid.to_string()))
    }
}

fn state_err(path: &Path, e: impl std::fmt::Display) -> NetlinkError {
    NetlinkError::State {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

impl StateDir {
    /// Uses `dir`, created with the first state file: a pass that records nothing leaves
    /// no directory behind. A path that exists and is not a directory is an error now.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, NetlinkError> {
        let dir = dir.into();
        match fs::metadata(&dir) {
            Ok(m) if !m.is_dir() => Err(state_err(&dir, "exists and is not a directory")),
            _ => Ok(StateDir { dir }),
        }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The file of one pod.
    pub fn file(&self, uid: &str) -> Result<PathBuf, NetlinkError> {
        check_uid(uid)?;
        Ok(self.dir.join(format!("{uid}.json")))
    }

    /// Reads a pod's state; a missing file is an empty state. A corrupt file is an
    /// error (never silently dropped: it may be the only record of an original route).
    pub fn load(&self, pod: &PodKey) -> Result<PodState, NetlinkError> {
        let path = self.file(&pod.uid)?;
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| state_err(&path, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(PodState::new(pod)),
            Err(e) => Err(state_err(&path, e)),
        }
    }

    /// Writes a pod's state atomically; an empty state removes the file.
    pub fn store(&self, state: &PodState) -> Result<(), NetlinkError> {
        let path = self.file(&state.uid)?;
        if state.is_empty() {
            return self.remove(&state.uid);
        }
        fs::create_dir_all(&self.dir).map_err(|e| state_err(&self.dir, e))?;
        let tmp = self.dir.join(format!(".{}.json.tmp", state.uid));
        let bytes = serde_json::to_vec_pretty(state).map_err(|e| state_err(&path, e))?;
        let write = || -> std::io::Result<()> {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
            fs::File::open(&self.dir)?.sync_all()
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            state_err(&path, e)
        })
    }

    /// Removes a pod's file (missing is fine).
    pub fn remove(&self, uid: &str) -> Result<(), NetlinkError> {
        let path = self.file(uid)?;
        match fs::remove_file(&path) {
            Ok(()) => fs::File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| state_err(&self.dir, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(state_err(&path, e)),
        }
    }

    /// Uids that have a state file.
    pub fn uids(&self) -> Result<Vec<String>, NetlinkError> {
        let mut out = Vec::new();
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(state_err(&self.dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| state_err(&self.dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(uid) = name.strip_suffix(".json")
                && !uid.starts_with('.')
                && check_uid(uid).is_ok()
            {
                out.push(uid.to_string());
            }
        }
        out.sort();
        Ok(out)
    }

    /// Reads a state file by uid alone (for pruning pods we no longer know).
    pub fn load_uid(&self, uid: &str) -> Result<Option<PodState>, NetlinkError> {
        let path = self.file(uid)?;
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| state_err(&path, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(state_err(&path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::kernel::SCOPE_UNIVERSE;

    fn pod() -> PodKey {
        PodKey {
            namespace: "ns".into(),
            name: "p".into(),
            uid: "174eecc3-58fa-42d1-8501-7f9004a28b76".into(),
        }
    }

    #[test]
    fn round_trip_and_remove() {
        let dir = tempfile::tempdir().unwrap();
        let sd = StateDir::open(dir.path().join("s")).unwrap();
        // Nothing recorded, no directory: created with the first state file.
        assert!(sd.load(&pod()).unwrap().is_empty());
        assert!(sd.uids().unwrap().is_empty());
        sd.remove(&pod().uid).unwrap();
        assert!(!dir.path().join("s").exists());
        let mut st = PodState::new(&pod());
        st.v4.push(RecordedRoute {
            route: KernelRoute {
                dst: "0.0.0.0/0".parse().unwrap(),
                gateway: Some("169.254.1.1".parse().unwrap()),
                oif: Some(2),
                protocol: 3,
                metric: 0,
                scope: SCOPE_UNIVERSE,
            },
            dev: "eth0".into(),
        });
        sd.store(&st).unwrap();
        assert_eq!(sd.load(&pod()).unwrap(), st);
        assert_eq!(sd.uids().unwrap(), vec![pod().uid]);
        st.v4.clear();
        sd.store(&st).unwrap();
        assert!(sd.uids().unwrap().is_empty());
    }

    #[test]
    fn bad_uid_and_corrupt_file_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let sd = StateDir::open(dir.path()).unwrap();
        let mut p = pod();
        p.uid = "../etc".into();
        assert!(matches!(sd.load(&p), Err(NetlinkError::BadUid(_))));
        std::fs::write(sd.file(&pod().uid).unwrap(), b"{not json").unwrap();
        assert!(matches!(sd.load(&pod()), Err(NetlinkError::State { .. })));
    }
}
