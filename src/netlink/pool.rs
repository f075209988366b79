//! The only place that enters network namespaces.
//!
//! `setns(2)` with `CLONE_NEWNET` switches the namespace of the calling thread only. A
//! tokio worker thread runs many unrelated tasks, so entering a pod's netns there would
//! leak that namespace into whatever runs next. Instead a fixed number of dedicated OS
//! threads take jobs from one queue. For each job a thread: opens the netns file, `setns`
//! into it, creates the rtnetlink socket (a netlink socket belongs to the namespace it was
//! created in, for its whole life), `setns` back to the host namespace, and then runs the
//! job with the socket.
//!
//! Two kinds of job: [`NetnsPool::run_blocking`] (the pod passes) gets a blocking
//! [`Rtnl`] and runs to its end on the thread: the kernel answers every request inside our
//! own system calls, so a thread never waits on anything but the CPU, and the number of
//! threads bounds the parallelism. [`NetnsPool::run`] (`explain`) gets an async `rtnetlink`
//! handle driven by the thread's own current-thread runtime, several in flight at once.
//!
//! Must not: run job code while the thread is inside a pod's namespace (only the socket
//! is created there); let a job's failure stop the thread.
use std::fs::File;
use std::future::Future;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use nix::sched::{CloneFlags, setns};
use rtnetlink::Handle;
use rtnetlink::sys::AsyncSocket;
use tokio::sync::{Mutex, Semaphore, mpsc, oneshot};
use tracing::{debug, error};

use super::NetlinkError;
use super::rtnl::Rtnl;

type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send>>;
/// The job gets the handle and the netlink port id of its socket (see
/// [`super::watch::OwnPorts`]).
type Work = Box<dyn FnOnce(Result<(Handle, u32), NetlinkError>) -> BoxFuture + Send>;
/// A blocking job gets the socket (or why there is none).
type Blocking = Box<dyn FnOnce(Result<&mut Rtnl, NetlinkError>) + Send>;

enum Kind {
    Async(Work),
    Blocking(Blocking),
}

struct Job {
    netns: PathBuf,
    work: Kind,
}

/// A bounded pool of netns-entering threads sharing one job queue: a thread takes the
/// next pod only when it has a free slot, so a thread that is descheduled (or busy with
/// a slow pod) does not hold queued pods hostage.
pub struct NetnsPool {
    sender: mpsc::UnboundedSender<Job>,
    threads: usize,
    /// The port id blocking jobs' sockets take when free (see [`Rtnl::open_as`]); 0: none.
    echo_port: Arc<AtomicU32>,
}

impl std::fmt::Debug for NetnsPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetnsPool")
            .field("threads", &self.threads)
            .finish()
    }
}

impl NetnsPool {
    /// Starts `threads` worker threads, each with at most `inflight` pods at once.
    pub fn new(threads: usize, inflight: usize) -> Result<Self, NetlinkError> {
        let threads = threads.max(1);
        let inflight = inflight.max(1);
        let (sender, rx) = mpsc::unbounded_channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let echo_port = Arc::new(AtomicU32::new(0));
        for i in 0..threads {
            let (rx, port) = (rx.clone(), echo_port.clone());
            let (ready_tx, ready_rx) = std::sync::mpsc::channel();
            std::thread::Builder::new()
                .name(format!("netns-{i}"))
                .spawn(move || worker(rx, inflight, port, ready_tx))
                .map_err(NetlinkError::Worker)?;
            ready_rx
                .recv()
                .map_err(|_| NetlinkError::PoolGone)?
                .map_err(NetlinkError::Worker)?;
        }
        Ok(NetnsPool {
            sender,
            threads,
            echo_port,
        })
    }

    /// From now on, blocking jobs' sockets take port id `port` where it is free and echo
    /// their writes to it (see [`Rtnl::open_as`]).
    pub fn echo_to(&self, port: u32) {
        self.echo_port.store(port, Ordering::Release);
    }

    /// Number of worker threads.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `f` with an rtnetlink handle whose socket lives in `netns`, and that socket's
    /// netlink port id. The future runs on a pool thread's runtime (outside the caller's
    /// runtime).
    pub async fn run<F, Fut, T>(&self, netns: &Path, f: F) -> Result<T, NetlinkError>
    where
        F: FnOnce(Handle, u32) -> Fut + Send + 'static,
        Fut: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let work: Work = Box::new(move |handle| {
            Box::pin(async move {
                let out = match handle {
                    Ok((h, port)) => Ok(f(h, port).await),
                    Err(e) => Err(e),
                };
                let _ = tx.send(out);
            })
        });
        self.sender
            .send(Job {
                netns: netns.to_path_buf(),
                work: Kind::Async(work),
            })
            .map_err(|_| NetlinkError::PoolGone)?;
        rx.await.map_err(|_| NetlinkError::PoolGone)?
    }

    /// Runs `f` on a pool thread with a blocking socket opened in `netns` (see the module
    /// doc); the caller awaits the result.
    pub async fn run_blocking<F, T>(&self, netns: &Path, f: F) -> Result<T, NetlinkError>
    where
        F: FnOnce(&mut Rtnl) -> T + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let work: Blocking = Box::new(move |sock| {
            let _ = tx.send(sock.map(f));
        });
        self.sender
            .send(Job {
                netns: netns.to_path_buf(),
                work: Kind::Blocking(work),
            })
            .map_err(|_| NetlinkError::PoolGone)?;
        rx.await.map_err(|_| NetlinkError::PoolGone)?
    }
}

fn worker(
    rx: Arc<Mutex<mpsc::UnboundedReceiver<Job>>>,
    inflight: usize,
    echo_port: Arc<AtomicU32>,
    ready: std::sync::mpsc::Sender<std::io::Result<()>>,
) {
    // Opened before any setns: this thread's (the host's) namespace, to return to.
    let host = match File::open("/proc/thread-self/ns/net") {
        Ok(f) => f,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    rt.block_on(async move {
        let slots = Arc::new(Semaphore::new(inflight));
        loop {
            // A free slot first, then the next job: only take what can start now.
            let Ok(permit) = slots.clone().acquire_owned().await else {
                break;
            };
            let Some(job) = rx.lock().await.recv().await else {
                break;
            };
            let work = match job.work {
                Kind::Blocking(work) => {
                    let port = Some(echo_port.load(Ordering::Acquire)).filter(|p| *p != 0);
                    let opened = match in_netns(&job.netns, &host, || Rtnl::open_as(port)) {
                        Ok(Ok(sock)) => Ok(sock),
                        Ok(Err(e)) => Err(NetlinkError::Socket(e)),
                        Err(e) => Err(e),
                    };
                    // A job that panics drops its reply (the caller sees PoolGone); the
                    // thread goes on with the next job.
                    let run = std::panic::AssertUnwindSafe(move || match opened {
                        Ok(mut sock) => work(Ok(&mut sock)),
                        Err(e) => work(Err(e)),
                    });
                    if std::panic::catch_unwind(run).is_err() {
                        error!(netns = %job.netns.display(), "a netns job panicked");
                    }
                    drop(permit);
                    continue;
                }
                Kind::Async(work) => work,
            };
            match open_in_netns(&job.netns, &host) {
                Ok((conn, handle, port)) => {
                    let conn_task = tokio::spawn(conn);
                    tokio::spawn(async move {
                        work(Ok((handle, port))).await;
                        conn_task.abort();
                        drop(permit);
                    });
                }
                Err(e) => {
                    debug!(netns = %job.netns.display(), error = %e, "cannot open netns");
                    tokio::spawn(async move {
                        work(Err(e)).await;
                        drop(permit);
                    });
                }
            }
        }
    });
}

type Connection = rtnetlink::proto::Connection<rtnetlink::packet_route::RouteNetlinkMessage>;

/// Runs `f` inside `netns` on the calling thread and returns to `host`: the only place
/// that calls `setns`. Only for synchronous work (creating sockets); the calling thread
/// must be a dedicated one (a pool worker or the watcher thread), never a tokio worker.
pub(crate) fn in_netns<T>(
    netns: &Path,
    host: &File,
    f: impl FnOnce() -> T,
) -> Result<T, NetlinkError> {
    let ns = File::open(netns).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            NetlinkError::NetnsGone(netns.to_path_buf())
        } else {
            NetlinkError::EnterNetns {
                path: netns.to_path_buf(),
                source: e,
            }
        }
    })?;
    setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| NetlinkError::EnterNetns {
        path: netns.to_path_buf(),
        source: e.into(),
    })?;
    let out = f();
    if let Err(e) = setns(host.as_fd(), CloneFlags::CLONE_NEWNET) {
        // Every use enters its own target before creating a socket, so a thread left in
        // a pod's netns still creates each socket in the right place; log loudly anyway.
        error!(error = %e, "cannot return netns thread to the host namespace");
    }
    Ok(out)
}

/// Enters `netns`, creates the socket there and returns to `host`. Runs synchronously on
/// the pool thread, so no other task can run while the thread is in the pod's netns.
/// The socket is bound at once so its port id (which the kernel stamps on the
/// notifications our requests cause) is known before anything is sent.
fn open_in_netns(netns: &Path, host: &File) -> Result<(Connection, Handle, u32), NetlinkError> {
    let (mut conn, handle, _messages) =
        in_netns(netns, host, rtnetlink::new_connection)?.map_err(NetlinkError::Socket)?;
    let addr = conn
        .socket_mut()
        .socket_mut()
        .bind_auto()
        .map_err(NetlinkError::Socket)?;
    Ok((conn, handle, addr.port_number()))
}
