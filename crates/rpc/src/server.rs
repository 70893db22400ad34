//! Serving gRPC: the given services plus `grpc.health.v1.Health` (each service reported as
//! serving) and server reflection (v1 and v1alpha), so grpcurl and grpcui work against any parlor
//! gRPC port.

use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::Routes;
use tonic::transport::Server;

/// Serves `routes` (with health and reflection) on `listener` until `shutdown` resolves.
/// `names` are the fully qualified service names reported as serving.
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    names: &[&str],
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let (reporter, health) = tonic_health::server::health_reporter();
    for name in names {
        reporter.set_service_status(*name, tonic_health::ServingStatus::Serving).await;
    }
    reporter.set_service_status("", tonic_health::ServingStatus::Serving).await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(parlor_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1();
    let reflection_alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(parlor_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha();
    let routes = routes.add_service(health);
    let routes = match (reflection, reflection_alpha) {
        (Ok(v1), Ok(alpha)) => routes.add_service(v1).add_service(alpha),
        _ => {
            tracing::warn!("gRPC reflection could not be built; serving without it");
            routes
        }
    };
    Server::builder()
        .add_routes(routes)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await
}

/// Binds a gRPC listener and logs its address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let listener = TcpListener::bind(addr).await?;
    tracing::info!("gRPC listening on {}", listener.local_addr()?);
    Ok(listener)
}
