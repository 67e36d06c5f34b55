//! The OpenAPI 3.0 document of the admin API, built from [`super::routes::ROUTES`] (so it
//! lists exactly the routes served, with who may call each), served at
//! `/api/v1/openapi.json`.

use serde_json::{Map, Value, json};

use super::routes::{Access, ROUTES};
use crate::auth::roles::Role;

/// The document, with the limits of `config`.
pub fn document(config: &crate::config::ApiConfig) -> Value {
    let mut paths = Map::new();
    for r in ROUTES {
        let params: Vec<Value> = r
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| {
                let schema = if name == "id" {
                    json!({ "type": "integer", "format": "int64" })
                } else if name == "copy" || name == "backup" {
                    json!({ "type": "string", "pattern": "^[0-9]{8}T[0-9]{6}\\.[0-9]{3}Z-[0-9a-f]{4}$" })
                } else {
                    json!({ "type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,62}$" })
                };
                json!({ "name": name, "in": "path", "required": true, "schema": schema })
            })
            .collect();
        let who = match r.access {
            Access::Public => "Anyone.".to_owned(),
            Access::Authenticated => "Any authenticated caller.".to_owned(),
            Access::Needs(p) => {
                let roles: Vec<&str> = Role::ALL
                    .iter()
                    .filter(|role| role.can(p))
                    .map(|role| role.as_str())
                    .collect();
                format!("Roles: {} (permission `{}`).", roles.join(", "), p.as_str())
            }
        };
        let mut responses = Map::new();
        let ok_body = if r.status == 204 {
            json!({ "description": "Done" })
        } else if r.operation == "download_anonymized_copy" {
            json!({ "description": "The copy's data object", "content": { "application/octet-stream": { "schema": { "type": "string", "format": "binary" } } } })
        } else {
            json!({ "description": "Done", "content": { "application/json": { "schema": { "type": "object" } } } })
        };
        responses.insert(r.status.to_string(), ok_body);
        let error = json!({ "description": "Error", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } });
        let mut codes = vec![
            "400", "401", "403", "404", "409", "413", "415", "422", "423", "429", "503",
        ];
        if r.access == Access::Public {
            codes.retain(|c| *c != "403");
        }
        for code in codes {
            responses.insert(code.to_owned(), error.clone());
        }
        let mut op = json!({
            "operationId": r.operation,
            "summary": r.summary,
            "description": who,
            "responses": responses,
        });
        if !params.is_empty() {
            op["parameters"] = Value::Array(params);
        }
        if r.body {
            op["requestBody"] = json!({
                "required": true,
                "content": { "application/json": { "schema": body_schema(r.operation, config) } }
            });
        }
        let query = query_parameters(r.operation);
        if !query.is_empty() {
            let mut all = op["parameters"].as_array().cloned().unwrap_or_default();
            all.extend(query);
            op["parameters"] = Value::Array(all);
        }
        if r.access == Access::Public {
            op["security"] = json!([]);
        }
        let item = paths
            .entry(r.path.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        item[r.method.as_str().to_ascii_lowercase()] = op;
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "coffre admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Backups, drills, users, tokens and the audit log of a coffre appliance. Every route but the login needs `Authorization: Bearer <token>`.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "status"],
                    "properties": { "error": { "type": "string" }, "status": { "type": "integer" } }
                }
            }
        },
        "security": [ { "bearer": [] } ],
    })
}

/// The JSON body of an operation (the handlers refuse unknown fields too). Optional
/// fields may be null. What JSON Schema cannot say (an age recipient's checksum, a
/// password's strength) is checked by the handler (400).
fn body_schema(operation: &str, config: &crate::config::ApiConfig) -> Value {
    let string = |max: u64| json!({ "type": "string", "minLength": 1, "maxLength": max });
    let roles: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
    let (properties, required) = match operation {
        "login" => (
            json!({ "name": string(64), "password": string(1024), "totp": { "type": "string", "pattern": "^[0-9 ]{6,7}$", "nullable": true } }),
            vec!["name", "password"],
        ),
        "change_password" => (
            json!({ "current": string(1024), "new": string(1024) }),
            vec!["current", "new"],
        ),
        "create_user" => (
            json!({
                "name": { "type": "string", "pattern": "^[A-Za-z0-9._@-]{1,64}$" },
                "role": { "type": "string", "enum": roles },
                "recipient": { "type": "string", "pattern": "^age1[qpzry9x8gf2tvdw0s3jn54khce6mua7l]{58}$", "nullable": true },
            }),
            vec!["name", "role"],
        ),
        "create_token" => (
            json!({
                "name": string(100),
                // OpenAPI 3.0: a nullable enum lists null among its values.
                "role": { "type": "string", "enum": roles.iter().map(|r| json!(r)).chain([Value::Null]).collect::<Vec<_>>(), "nullable": true },
                "days": { "type": "integer", "minimum": 1, "maximum": config.token_max_days, "nullable": true },
            }),
            vec!["name"],
        ),
        "restore_backup" => (json!({ "to": string(4096) }), vec!["to"]),
        "record_erasure" => (
            json!({
                "source": string(200),
                "subject": string(1000),
                "reason": string(1000),
            }),
            vec!["source", "subject"],
        ),
        "update_user" => (
            json!({
                "disabled": { "type": "boolean", "nullable": true },
                "role": { "type": "string", "enum": roles.iter().map(|r| json!(r)).chain([Value::Null]).collect::<Vec<_>>(), "nullable": true },
                "recipient": { "type": "string", "pattern": "^age1[qpzry9x8gf2tvdw0s3jn54khce6mua7l]{58}$", "nullable": true },
            }),
            vec![],
        ),
        _ => (json!({}), vec![]),
    };
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

/// The query parameters of an operation.
fn query_parameters(operation: &str) -> Vec<Value> {
    let source = json!({ "name": "source", "in": "query", "required": false, "schema": { "type": "string" } });
    let limit = json!({ "name": "limit", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 0, "maximum": 10000 } });
    let after = json!({ "name": "after", "in": "query", "required": false, "schema": { "type": "integer", "format": "int64" } });
    match operation {
        "list_backups" | "list_erasures" => vec![source],
        "erasure_status" => vec![
            json!({ "name": "subject", "in": "query", "required": true, "schema": { "type": "string", "minLength": 1 } }),
        ],
        "list_jobs" | "list_drills" => vec![source, limit],
        "list_audit" => vec![after, limit],
        _ => vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_lists_every_route_once() {
        let doc = document(&crate::config::ApiConfig::default());
        let mut n = 0;
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("item").keys() {
                n += 1;
                assert!(
                    ROUTES
                        .iter()
                        .any(|r| r.path == path && r.method.as_str().eq_ignore_ascii_case(method)),
                    "{method} {path}"
                );
            }
        }
        assert_eq!(n, ROUTES.len());
        assert_eq!(doc["paths"]["/api/v1/login"]["post"]["security"], json!([]));
    }
}
