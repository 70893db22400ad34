//! The OpenAPI document is served, and every path and method it lists exists in the router.

mod common;

use common::TestApp;
use reqwest::{Method, StatusCode};

#[tokio::test]
async fn every_documented_route_is_served_and_answers_in_the_contract_shape() {
    let app = TestApp::spawn().await;
    let (status, doc) = app.call(Method::GET, "/api/v1/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap_or_default().starts_with("3."), "{doc}");
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 25, "every route is documented");
    for (path, ops) in paths {
        let concrete = path.replace("{id}", "x").replace("{user_id}", "x").replace("{message_id}", "x");
        for method in ops.as_object().expect("operations").keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("a method");
            let (status, body) = app.call(method.clone(), &concrete, None, None).await;
            let missing = body["error"]["message"] == "no such route";
            assert!(!missing, "{method} {path} is documented but not routed");
            assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "{method} {path}");
            if status.is_client_error() {
                assert!(body["error"]["code"].is_string(), "{method} {path}: {body}");
            }
        }
    }
    let (status, body) = app.call(Method::GET, "/api/v1/no/such/route", None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
}
