//! The OpenAPI 3.0 document of the admin API, built from [`super::routes::ROUTES`] (so it
//! lists exactly the routes served, with who may call each), served at
//! `/api/v1/openapi.json`.

use serde_json::{Map, Value, json};

use super::routes::{Access, ROUTES};
use crate::auth::roles::Role;

/// The document.
pub fn document() -> Value {
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
                "content": { "application/json": { "schema": { "type": "object" } } }
            });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_lists_every_route_once() {
        let doc = document();
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
