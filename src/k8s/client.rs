//! The Kubernetes client of this process: built from $KUBECONFIG or the in-cluster service
//! account, with a client-side request rate limit and a list page size.
//!
//! The limit is client-go's token bucket: on average `--kube-api-qps` requests a second,
//! with bursts of up to `--kube-api-burst`; a request over it waits (every request of the
//! client queues behind it, as in client-go). A watch costs one request when it starts.
//! Lists are paginated (`limit` / `continue`) by `--kube-page-size` objects, so a relist of
//! 50,000 pods is 100 requests of bounded size.
//!
//! Owns the client's construction and the limiter. Must not: decide what to request.
use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use kube::Client;
use kube::client::ClientBuilder;
use tokio::time::{Instant, Sleep};
use tower::{Layer, Service};

use super::KubeError;

/// client-go's defaults are 5 requests a second, bursts of 10, for any client; controllers
/// raise them (kube-controller-manager: 20 / 30). 50 / 100 lets a relist of 50,000 pods
/// (100 pages) go in one burst while a controller gone wild stays bounded.
pub const DEFAULT_QPS: f32 = 50.0;
pub const DEFAULT_BURST: u32 = 100;
/// client-go's pager default.
pub const DEFAULT_PAGE_SIZE: u32 = 500;

/// How hard this process may use the API server.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ApiLimits {
    /// Requests a second on average; 0 = no limit.
    pub qps: f32,
    /// Requests at once after a quiet time (at least 1).
    pub burst: u32,
    /// Objects per list page.
    pub page_size: u32,
}

impl Default for ApiLimits {
    fn default() -> Self {
        ApiLimits {
            qps: DEFAULT_QPS,
            burst: DEFAULT_BURST,
            page_size: DEFAULT_PAGE_SIZE,
        }
    }
}

/// A client within `limits`.
pub async fn client(limits: ApiLimits) -> Result<Client, KubeError> {
    let config = kube::Config::infer()
        .await
        .map_err(|e| KubeError::Config(e.to_string()))?;
    let builder = ClientBuilder::try_from(config)?;
    Ok(if limits.qps > 0.0 {
        builder.with_layer(&RateLimitLayer(limits)).build()
    } else {
        builder.build()
    })
}

/// A token bucket: `burst` tokens, refilled at `qps` a second.
#[derive(Debug)]
struct Bucket {
    qps: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn new(qps: f32, burst: u32, now: Instant) -> Bucket {
        let burst = f64::from(burst.max(1));
        Bucket {
            qps: f64::from(qps),
            burst,
            tokens: burst,
            at: now,
        }
    }

    /// Takes a token at `now`, or says how long until there is one.
    fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.qps).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.qps))
        }
    }
}

/// Wraps a client's service in the limit.
struct RateLimitLayer(ApiLimits);

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimited<S>;

    fn layer(&self, inner: S) -> RateLimited<S> {
        RateLimited {
            inner,
            bucket: Bucket::new(self.0.qps, self.0.burst, Instant::now()),
            token: false,
            wait: None,
        }
    }
}

/// A service that is ready only when a token is there (taken by the next call).
struct RateLimited<S> {
    inner: S,
    bucket: Bucket,
    /// A token is taken for the next call.
    token: bool,
    wait: Option<Pin<Box<Sleep>>>,
}

impl<S: Service<R>, R> Service<R> for RateLimited<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        while !self.token {
            if let Some(wait) = self.wait.as_mut() {
                ready!(wait.as_mut().poll(cx));
                self.wait = None;
            }
            match self.bucket.take(Instant::now()) {
                Ok(()) => self.token = true,
                Err(after) => self.wait = Some(Box::pin(tokio::time::sleep(after))),
            }
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> S::Future {
        self.token = false;
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_gives_a_burst_then_qps() {
        let t0 = Instant::now();
        let mut b = Bucket::new(2.0, 3, t0);
        for _ in 0..3 {
            assert_eq!(b.take(t0), Ok(()));
        }
        assert_eq!(b.take(t0), Err(Duration::from_millis(500)));
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(b.take(t1), Ok(()));
        assert_eq!(b.take(t1), Err(Duration::from_millis(500)));
        // A long quiet time refills up to the burst, never more.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(b.take(t2), Ok(()));
        }
        assert!(b.take(t2).is_err());
    }

    /// Counts calls; always ready.
    struct Calls(u32);

    impl Service<()> for Calls {
        type Response = u32;
        type Error = std::convert::Infallible;
        type Future = std::future::Ready<Result<u32, Self::Error>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, _: ()) -> Self::Future {
            self.0 += 1;
            std::future::ready(Ok(self.0))
        }
    }

    /// Requests over the burst wait: with one token in 1,000 s, the sixth of a burst of
    /// five is not ready (its wait is on tokio's clock, so this runs inside a runtime).
    #[tokio::test]
    async fn a_request_over_the_burst_is_not_ready() {
        let mut svc = RateLimitLayer(ApiLimits {
            qps: 0.001,
            burst: 5,
            page_size: 1,
        })
        .layer(Calls(0));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        for _ in 0..5 {
            assert!(matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))));
            // Ready stays ready until the call takes the token.
            assert!(matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))));
            svc.call(()).await.expect("call");
        }
        assert!(svc.poll_ready(&mut cx).is_pending());
        assert!(svc.wait.is_some(), "it waits for the next token");
        assert_eq!(svc.inner.0, 5);
    }
}
