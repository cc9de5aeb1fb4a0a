//! The OpenAPI document: served, committed in step, and covering the route table.

use keyclerk::routes::{Access, ROUTES};
use serde_json::Value;

use crate::helpers::{repo, TestServer};

const COMMITTED: &str = "docs/openapi.json";

#[test]
fn the_served_document_is_the_committed_copy() {
    let server = TestServer::start();
    let served = server
        .request("GET", "/openapi.json", None)
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let path = repo().join(COMMITTED);
    if std::env::var_os("KC_UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &served).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        served == committed,
        "{COMMITTED} is not the document the code generates; run \
         `KC_UPDATE_OPENAPI=1 cargo test --test api openapi` and commit it"
    );
}

#[test]
fn every_route_is_documented_with_its_errors_as_problems() {
    let doc: Value = serde_json::from_str(keyclerk::routes::openapi::document_json()).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc["paths"].as_object().unwrap();
    let mut documented = 0;
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            documented += 1;
            let route = ROUTES
                .iter()
                .find(|r| r.path == path && r.method.eq_ignore_ascii_case(method));
            let route =
                route.unwrap_or_else(|| panic!("{method} {path} is documented but not routed"));
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{method} {path}: no success"
            );
            for (status, r) in responses {
                if status.starts_with('2') {
                    // The metrics are the one answer in Prometheus's text format, a
                    // download the one of the file's bytes.
                    let media = match path.as_str() {
                        "/metrics" => "text/plain",
                        "/v1/downloads" => "application/octet-stream",
                        _ => "application/json",
                    };
                    assert!(r["content"][media].is_object(), "{method} {path} {status}");
                } else {
                    let problem = &r["content"]["application/problem+json"]["schema"]["$ref"];
                    assert_eq!(
                        problem, "#/components/schemas/Problem",
                        "{method} {path} {status}"
                    );
                    assert!(
                        r["description"].as_str().unwrap().contains('`'),
                        "{method} {path} {status}: the codes are not named"
                    );
                }
            }
            let has = |s: &str| responses.contains_key(s);
            assert!(has("500"), "{method} {path}");
            match route.access {
                Access::Roles(_) | Access::KeyOrRoles(_) => {
                    assert!(has("401") && has("403"), "{method} {path}: no 401/403");
                }
                Access::LicenseKey => assert!(has("429"), "{method} {path}: no 429"),
                Access::Anyone | Access::ProviderSignature => {}
            }
            if let Access::Roles(_) = route.access {
                assert_eq!(
                    op["security"][0]["token"],
                    serde_json::json!([]),
                    "{method} {path}"
                );
            }
        }
    }
    assert_eq!(documented, ROUTES.len(), "a route is not documented");
}

#[test]
fn every_link_leads_to_an_operation_and_names_only_what_it_takes() {
    let doc: Value = serde_json::from_str(keyclerk::routes::openapi::document_json()).unwrap();
    let mut operations = std::collections::HashMap::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            let id = op["operationId"].as_str().unwrap();
            assert!(
                operations.insert(id.to_owned(), op).is_none(),
                "operationId {id} is not unique"
            );
        }
    }
    let schemas = &doc["components"]["schemas"];
    let mut links = 0;
    for (from, op) in &operations {
        for (status, response) in op["responses"].as_object().unwrap() {
            let Some(found) = response["links"].as_object() else {
                continue;
            };
            for (name, link) in found {
                links += 1;
                let to = link["operationId"].as_str().unwrap();
                let target = operations
                    .get(to)
                    .unwrap_or_else(|| panic!("{from} {status} {name}: no operation {to}"));
                let params: Vec<&str> = target["parameters"]
                    .as_array()
                    .map(|p| p.iter().map(|p| p["name"].as_str().unwrap()).collect())
                    .unwrap_or_default();
                for param in link["parameters"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|p| p.0)
                {
                    assert!(
                        params.contains(&param.as_str()),
                        "{from} -> {to}: no parameter {param}"
                    );
                }
                if let Some(body) = link["requestBody"].as_object() {
                    let schema = &target["requestBody"]["content"]["application/json"]["schema"];
                    // An optional body is "null or the body".
                    let reference = std::iter::once(schema)
                        .chain(schema["oneOf"].as_array().into_iter().flatten())
                        .find_map(|s| s["$ref"].as_str())
                        .unwrap_or_default();
                    let name = reference.rsplit('/').next().unwrap_or_default();
                    let properties = &schemas[name]["properties"];
                    for field in body.keys() {
                        assert!(
                            properties[field].is_object(),
                            "{from} -> {to}: no field {field}"
                        );
                    }
                }
                for expression in link["parameters"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .chain(link["requestBody"].as_object().into_iter().flatten())
                    .map(|(_, v)| v.as_str().unwrap())
                {
                    assert!(
                        expression.starts_with("$response.body#/")
                            || expression.starts_with("$request."),
                        "{from} -> {to}: {expression}"
                    );
                }
            }
        }
    }
    assert!(links >= 40, "only {links} links");
}
