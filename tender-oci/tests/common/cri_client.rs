//! A CRI client (kubelet's side of the runtime service) on a private containerd's socket,
//! for the CRI test and the engines bench.

use hyper_util::rt::TokioIo;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::{Channel, Endpoint, Uri};

use super::containerd::Containerd;

/// The runtime service of `d`, with the runtime its calls block on.
pub struct Cri {
    /// Runs the calls (current-thread: the tests are synchronous).
    pub rt: tokio::runtime::Runtime,
    /// The gRPC client; cloned per call.
    pub client: RuntimeServiceClient<Channel>,
    /// The daemon.
    pub d: &'static Containerd,
}

/// Runs a CRI call on a [`Cri`]: `call!(cri, method, request)`.
#[allow(unused_macros)] // each test binary uses a different subset
macro_rules! call {
    ($cri:expr, $method:ident, $req:expr) => {{
        let mut client = $cri.client.clone();
        let req = $req;
        $cri.rt.block_on(async move { client.$method(req).await }).map(|r| r.into_inner())
    }};
}
#[allow(unused_imports)]
pub(crate) use call;

impl Cri {
    /// Connects to `d`'s CRI socket.
    pub fn new(d: &'static Containerd) -> Self {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let sock = d.sock.clone();
        let channel = rt
            .block_on(async move {
                // The URI is a placeholder: the connector dials the Unix socket.
                Endpoint::try_from("http://[::]:50051")
                    .unwrap()
                    .connect_with_connector(tower::service_fn(move |_: Uri| {
                        let sock = sock.clone();
                        async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(sock).await?)) }
                    }))
                    .await
            })
            .expect("connect to containerd's CRI socket");
        Cri { rt, client: RuntimeServiceClient::new(channel), d }
    }
}
