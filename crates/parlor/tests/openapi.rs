//! The OpenAPI document is generated from the routes: every route of the contract is in it, every
//! documented path and method answers, the methods it does not list are not routed, the schemas
//! it gives match real answers, and its browsable page loads nothing from elsewhere.

mod common;

use common::TestApp;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// The routes of CONTRACT.md, plus the operational ones.
const ROUTES: &[&str] = &[
    "GET /healthz",
    "GET /readyz",
    "GET /metrics",
    "GET /api/v1/openapi.json",
    "POST /api/v1/auth/register",
    "POST /api/v1/auth/login",
    "POST /api/v1/auth/refresh",
    "POST /api/v1/auth/logout",
    "POST /api/v1/auth/recover",
    "GET /api/v1/auth/sessions",
    "DELETE /api/v1/auth/sessions/{id}",
    "GET /api/v1/users/me",
    "PATCH /api/v1/users/me",
    "POST /api/v1/users/me/password",
    "GET /api/v1/users/{id}",
    "GET /api/v1/users",
    "GET /api/v1/unsubscribe",
    "POST /api/v1/unsubscribe",
    "POST /api/v1/rooms",
    "GET /api/v1/rooms",
    "GET /api/v1/rooms/public",
    "GET /api/v1/rooms/{id}",
    "PATCH /api/v1/rooms/{id}",
    "POST /api/v1/rooms/{id}/join",
    "POST /api/v1/rooms/{id}/leave",
    "GET /api/v1/rooms/{id}/members",
    "POST /api/v1/rooms/{id}/members",
    "DELETE /api/v1/rooms/{id}/members/{user_id}",
    "POST /api/v1/dms",
    "GET /api/v1/rooms/{id}/messages",
    "POST /api/v1/rooms/{id}/messages",
    "PATCH /api/v1/rooms/{id}/messages/{message_id}",
    "DELETE /api/v1/rooms/{id}/messages/{message_id}",
    "POST /api/v1/rooms/{id}/read",
    "GET /api/v1/search",
    "GET /api/v1/ws",
];

const METHODS: [&str; 5] = ["get", "post", "patch", "put", "delete"];

async fn document(app: &TestApp) -> Value {
    let (status, doc) = app.call(Method::GET, "/api/v1/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap_or_default().starts_with("3."), "{doc}");
    doc
}

fn operations(doc: &Value) -> BTreeSet<String> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            if item.get(method).is_some() {
                ops.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    ops
}

fn concrete(path: &str) -> String {
    path.replace("{id}", "x").replace("{user_id}", "x").replace("{message_id}", "x")
}

#[tokio::test]
async fn the_document_lists_exactly_the_routes_of_the_contract() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let documented = operations(&doc);
    let expected: BTreeSet<String> = ROUTES.iter().map(|r| (*r).to_owned()).collect();
    let missing: Vec<_> = expected.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&expected).collect();
    assert!(missing.is_empty(), "routes of the contract not documented: {missing:?}");
    assert!(unknown.is_empty(), "documented routes the contract does not have: {unknown:?}");
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("operations") {
            assert!(op["summary"].is_string(), "{method} {path} has a summary");
            assert!(op["tags"].as_array().is_some_and(|t| !t.is_empty()), "{method} {path} has a tag");
            let responses = op["responses"].as_object().expect("responses");
            for (code, response) in responses {
                let is_error = code.starts_with('4') || code.starts_with('5');
                if is_error && path.starts_with("/api/v1/") {
                    let schema = &response["content"]["application/json"]["schema"]["$ref"];
                    assert_eq!(schema, "#/components/schemas/ErrorBody", "{method} {path} {code}");
                }
            }
            let needs_token =
                op["security"].as_array().is_some_and(|s| s.iter().all(|r| r.get("bearer").is_some()));
            if needs_token {
                assert!(responses.contains_key("401"), "{method} {path} documents 401");
            }
        }
    }
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
}

#[tokio::test]
async fn every_documented_route_is_served_and_no_other_method_is() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).expect("a method");
            let (status, body) = app.call(m.clone(), &concrete(path), None, None).await;
            let unrouted = body["error"]["message"] == "no such route";
            if item.get(method).is_some() {
                assert!(!unrouted, "{method} {path} is documented but not routed");
                assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "{method} {path}");
                let documented = &item[method]["responses"][status.as_str()];
                assert!(
                    documented.is_object(),
                    "{method} {path} answered {status}, which it does not document"
                );
                if status.is_client_error() {
                    assert!(body["error"]["code"].is_string(), "{method} {path}: {body}");
                }
            } else {
                assert!(
                    unrouted && status == StatusCode::NOT_FOUND,
                    "{method} {path} is routed but not documented"
                );
            }
        }
    }
    let (status, body) = app.call(Method::GET, "/api/v1/no/such/route", None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
}

/// Every property a real answer has is in the schema, and every required one is in the answer.
fn check(doc: &Value, schema: &Value, value: &Value, at: &str) {
    let schema = resolve(doc, schema);
    if let Some(all) = schema["allOf"].as_array() {
        let mut props = serde_json::Map::new();
        let mut required = Vec::new();
        for part in all {
            let part = resolve(doc, part);
            props.extend(part["properties"].as_object().cloned().unwrap_or_default());
            required.extend(part["required"].as_array().cloned().unwrap_or_default());
        }
        let merged = json!({"type": "object", "properties": props, "required": required});
        return check(doc, &merged, value, at);
    }
    if let Some(one) = schema["oneOf"].as_array().or(schema["anyOf"].as_array()) {
        if value.is_null() && one.iter().any(|s| s["type"] == "null") {
            return;
        }
        let first = one.iter().find(|s| s["type"] != "null").expect("a non-null alternative");
        return check(doc, first, value, at);
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if value.is_null() {
        assert!(types.contains(&"null"), "{at} is null but the schema says {schema}");
        return;
    }
    match value {
        Value::Object(map) => {
            let props =
                schema["properties"].as_object().unwrap_or_else(|| panic!("{at}: no properties in {schema}"));
            for (key, v) in map {
                let sub =
                    props.get(key).unwrap_or_else(|| panic!("{at}.{key} is not in the schema {schema}"));
                check(doc, sub, v, &format!("{at}.{key}"));
            }
            for key in schema["required"].as_array().into_iter().flatten() {
                let key = key.as_str().unwrap_or_default();
                assert!(map.contains_key(key), "{at}.{key} is required by the schema");
            }
        }
        Value::Array(items) => {
            assert!(types.contains(&"array"), "{at} is an array; schema {schema}");
            for (i, item) in items.iter().enumerate() {
                check(doc, &schema["items"], item, &format!("{at}[{i}]"));
            }
        }
        Value::String(s) => {
            assert!(types.contains(&"string"), "{at} is a string; schema {schema}");
            if let Some(values) = schema["enum"].as_array() {
                assert!(values.iter().any(|v| v == s), "{at} = {s:?} is not one of {values:?}");
            }
        }
        Value::Number(_) => {
            assert!(types.contains(&"integer") || types.contains(&"number"), "{at} is a number; {schema}")
        }
        Value::Bool(_) => assert!(types.contains(&"boolean"), "{at} is a boolean; schema {schema}"),
        Value::Null => {}
    }
}

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => {
            let name = r.trim_start_matches("#/components/schemas/");
            resolve(doc, &doc["components"]["schemas"][name])
        }
        None => schema,
    }
}

fn response_schema<'a>(doc: &'a Value, method: &str, path: &str, status: u16) -> &'a Value {
    let schema =
        &doc["paths"][path][method]["responses"][status.to_string()]["content"]["application/json"]["schema"];
    assert!(schema.is_object(), "{method} {path} {status} has a JSON schema");
    schema
}

#[tokio::test]
async fn real_answers_match_the_documented_schemas() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let (status, alice) = app
        .call(
            Method::POST,
            "/api/v1/auth/register",
            None,
            Some(json!({"username": "alice", "password": "correct horse", "email": "a@example.com"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    check(&doc, response_schema(&doc, "post", "/api/v1/auth/register", 201), &alice, "register");
    let token = alice["access_token"].as_str().expect("a token").to_owned();
    let bob = app.register("bob").await;
    let t = Some(token.as_str());

    let (_, room) =
        app.call(Method::POST, "/api/v1/rooms", t, Some(json!({"name": "general", "topic": "hi"}))).await;
    check(&doc, response_schema(&doc, "post", "/api/v1/rooms", 201), &room, "room");
    let room_id = room["id"].as_str().expect("an id").to_owned();
    let (_, sent) = app
        .call(
            Method::POST,
            &format!("/api/v1/rooms/{room_id}/messages"),
            t,
            Some(json!({"body": "hello **world** https://example.com", "nonce": "n1"})),
        )
        .await;
    check(&doc, response_schema(&doc, "post", "/api/v1/rooms/{id}/messages", 201), &sent, "message");

    let (_, login) = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "alice", "password": "correct horse"})),
        )
        .await;
    check(&doc, response_schema(&doc, "post", "/api/v1/auth/login", 200), &login, "login");
    let (_, dm) = app.call(Method::POST, "/api/v1/dms", t, Some(json!({"user_id": bob.id}))).await;
    check(&doc, response_schema(&doc, "post", "/api/v1/dms", 200), &dm, "dm");

    for (path, concrete) in [
        ("/api/v1/rooms", "/api/v1/rooms".to_owned()),
        ("/api/v1/rooms/public", "/api/v1/rooms/public".to_owned()),
        ("/api/v1/rooms/{id}", format!("/api/v1/rooms/{room_id}")),
        ("/api/v1/rooms/{id}/members", format!("/api/v1/rooms/{room_id}/members")),
        ("/api/v1/rooms/{id}/messages", format!("/api/v1/rooms/{room_id}/messages")),
        ("/api/v1/search", "/api/v1/search?q=hello".to_owned()),
        ("/api/v1/users", "/api/v1/users?q=b".to_owned()),
        ("/api/v1/users/me", "/api/v1/users/me".to_owned()),
        ("/api/v1/users/{id}", format!("/api/v1/users/{}", bob.id)),
        ("/api/v1/auth/sessions", "/api/v1/auth/sessions".to_owned()),
    ] {
        let (status, body) = app.call(Method::GET, &concrete, t, None).await;
        assert_eq!(status, StatusCode::OK, "{concrete}: {body}");
        check(&doc, response_schema(&doc, "get", path, 200), &body, path);
    }
    let (status, error) = app.call(Method::POST, "/api/v1/rooms", t, Some(json!({"name": ""}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    check(&doc, response_schema(&doc, "post", "/api/v1/rooms", 422), &error, "error");
    let (_, ready) = app.call(Method::GET, "/readyz", None, None).await;
    check(&doc, response_schema(&doc, "get", "/readyz", 200), &ready, "readyz");
}

#[tokio::test]
async fn the_docs_page_is_served_with_every_asset_from_this_server() {
    let app = TestApp::spawn().await;
    let client = reqwest::Client::new();
    let page = client.get(app.url("/api/docs/")).send().await.expect("the page answers");
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("a body");
    assert!(html.contains("swagger-ui"), "{html}");
    let mut assets = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for part in html.split(attr).skip(1) {
            let link = part.split('"').next().unwrap_or_default();
            assert!(!link.starts_with("http") && !link.starts_with("//"), "{link} is fetched from elsewhere");
            assets.push(link.trim_start_matches("./").to_owned());
        }
    }
    assert!(assets.iter().any(|a| a.ends_with(".js")), "{assets:?}");
    for asset in &assets {
        let resp = client.get(app.url(&format!("/api/docs/{asset}"))).send().await.expect("an asset answers");
        assert_eq!(resp.status(), StatusCode::OK, "{asset}");
        let text = resp.text().await.unwrap_or_default();
        if asset.ends_with("initializer.js") {
            assert!(text.contains("/api/v1/openapi.json"), "the page loads this server's document: {text}");
        }
    }
    let redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client")
        .get(app.url("/api/docs"))
        .send()
        .await
        .expect("answers");
    assert!(redirect.status().is_redirection());
    // A file the page does not have is the contract's JSON 404, not an empty answer.
    let missing = client.get(app.url("/api/docs/no-such-asset.js")).send().await.expect("answers");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let body: Value = missing.json().await.expect("a JSON body");
    assert_eq!(body["error"]["code"], "not_found", "{body}");
}

/// Runs a standard validator (the Python `openapi-spec-validator`, which client generators'
/// checks agree with) over a document; `Err` with its report if it finds the document invalid.
fn validate_with_openapi_spec_validator(doc: &Value) -> Result<(), String> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, doc.to_string()).expect("the document is written");
    let script = "import json, sys\n\
                  from openapi_spec_validator import validate\n\
                  validate(json.load(open(sys.argv[1])))\n";
    let out = std::process::Command::new("python3").arg("-c").arg(script).arg(&file).output();
    let install =
        "install it with `python3 -m pip install \"openapi-spec-validator>=0.7,<1\"` (.ci/run does)";
    let out = match out {
        Ok(out) => out,
        Err(e) => panic!("python3 is needed to validate the OpenAPI document ({e}); {install}"),
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named 'openapi_spec_validator'"),
        "the OpenAPI validator is missing: {install}"
    );
    if out.status.success() { Ok(()) } else { Err(stderr.into_owned()) }
}

#[tokio::test]
async fn the_served_document_is_valid_openapi_by_a_standard_validator() {
    let app = TestApp::spawn().await;

    let doc = document(&app).await;

    if let Err(report) = validate_with_openapi_spec_validator(&doc) {
        panic!("openapi-spec-validator rejects /api/v1/openapi.json:\n{report}");
    }
}

#[test]
fn the_validator_rejects_a_path_parameter_listed_twice() {
    let param = json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string"}});
    let doc = json!({
        "openapi": "3.1.0",
        "info": {"title": "t", "version": "1"},
        "paths": {"/rooms/{id}": {"get": {
            "parameters": [param, param],
            "responses": {"200": {"description": "ok"}}
        }}}
    });

    assert!(validate_with_openapi_spec_validator(&doc).is_err(), "a duplicate parameter is caught");
}
