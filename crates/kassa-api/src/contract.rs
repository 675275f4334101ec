//! What the published document promises beyond what poem-openapi derives from the
//! types, so that clients generated from it (and schemathesis) read every answer:
//!
//! - an optional field is `nullable`: an `Option` is written as `null` when empty;
//! - request objects take no fields but their own (they deny unknown fields);
//! - an operation with a body may answer 415 when the body is of another type;
//! - `limit` is bounded as [`crate::pagination`] bounds it, unsigned integers by 0 and
//!   their type's largest value;
//! - a method a path does not have is answered 405 with `Allow` naming those it has,
//!   and a number or boolean where a string is declared is refused ([`keep`]).

use std::sync::Arc;

use poem::http::{HeaderValue, Method, StatusCode};
use poem::{Endpoint, IntoResponse, Request, Response};
use serde_json::{Map, Value, json};

use crate::error::Problem;
use crate::pagination::MAX_LIMIT;

/// The document poem-openapi derived, with the promises above written into it.
pub fn publish(derived: &str) -> String {
    let mut doc: Value = serde_json::from_str(derived).expect("poem-openapi writes JSON");
    let request_objects = request_objects(&doc);
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        for (name, schema) in schemas.iter_mut() {
            nullable_optionals(schema);
            if request_objects.contains(name) && schema.get("properties").is_some() {
                schema["additionalProperties"] = Value::Bool(false);
            }
        }
    }
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for operation in paths.values_mut().filter_map(Value::as_object_mut) {
            for op in operation.values_mut() {
                document_operation(op);
            }
        }
    }
    unsigned_bounds(&mut doc);
    serde_json::to_string_pretty(&doc).expect("a JSON value serializes")
}

/// An unsigned integer (`format: uint32`, …) is at least 0 and at most its type's
/// largest value: poem-openapi refuses a negative one and one too large for the
/// type with 400, so the document says so.
fn unsigned_bounds(node: &mut Value) {
    match node {
        Value::Object(map) => {
            let largest = match map.get("format").and_then(Value::as_str) {
                Some("uint8") => Some(json!(u8::MAX)),
                Some("uint16") => Some(json!(u16::MAX)),
                Some("uint32") => Some(json!(u32::MAX)),
                Some("uint64") => Some(json!(u64::MAX)),
                _ => None,
            };
            if let Some(largest) = largest
                && map.get("type") == Some(&json!("integer"))
            {
                map.entry("minimum").or_insert(json!(0));
                map.entry("maximum").or_insert(largest);
            }
            map.values_mut().for_each(unsigned_bounds);
        }
        Value::Array(items) => items.iter_mut().for_each(unsigned_bounds),
        _ => {}
    }
}

/// Every property not in `required` may be `null`. A `$ref` cannot carry `nullable`
/// beside it, so it is wrapped in `allOf`.
fn nullable_optionals(schema: &mut Value) {
    let required: Vec<String> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) else {
        return;
    };
    for (name, property) in properties.iter_mut() {
        if required.contains(name) {
            continue;
        }
        if let Some(reference) = property.get("$ref").cloned() {
            *property = json!({ "allOf": [{ "$ref": reference }] });
        }
        property["nullable"] = Value::Bool(true);
    }
}

/// The names of the object schemas a request body can hold, but not the members of a
/// tagged union (each composed with its tag, which is not one of its own fields).
fn request_objects(doc: &Value) -> Vec<String> {
    // `component`: `node` is a schema of `components`, so its `allOf` composes a union
    // member (poem-openapi writes `{"allOf": [member, tag]}`) rather than wrapping a
    // property's reference.
    fn walk(
        node: &Value,
        doc: &Value,
        seen: &mut Vec<(String, bool)>,
        member: bool,
        component: bool,
    ) {
        match node {
            Value::Object(map) => {
                let name = map
                    .get("$ref")
                    .and_then(Value::as_str)
                    .and_then(|r| r.strip_prefix("#/components/schemas/"));
                if let Some(name) = name {
                    if seen.iter().any(|(n, m)| n == name && *m == member) {
                        return;
                    }
                    seen.push((name.to_owned(), member));
                    if let Some(schema) = doc.pointer(&format!("/components/schemas/{name}")) {
                        walk(schema, doc, seen, false, true);
                    }
                    return;
                }
                for (key, value) in map {
                    walk(value, doc, seen, component && key == "allOf", false);
                }
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, doc, seen, member, false)),
            _ => {}
        }
    }
    let mut seen = Vec::new();
    let operations = doc["paths"].as_object().into_iter().flatten();
    for op in operations
        .filter_map(|(_, o)| o.as_object())
        .flat_map(|o| o.values())
    {
        if let Some(body) = op.get("requestBody") {
            walk(body, doc, &mut seen, false, false);
        }
    }
    seen.into_iter()
        .filter(|(_, member)| !member)
        .map(|(name, _)| name)
        .collect()
}

fn document_operation(op: &mut Value) {
    if op.get("requestBody").is_some()
        && let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut)
    {
        responses.insert(
            "415".into(),
            json!({
                "description": "The body is not of a content type this operation takes.",
                "content": { crate::error::PROBLEM_JSON: {
                    "schema": { "$ref": "#/components/schemas/Problem" }
                }}
            }),
        );
    }
    let parameters = op.get_mut("parameters").and_then(Value::as_array_mut);
    for param in parameters.into_iter().flatten() {
        if param["in"] == "query" && param["name"] == "limit" {
            let schema = param["schema"].as_object_mut().map(std::mem::take);
            let mut schema: Map<String, Value> = schema.unwrap_or_default();
            schema.insert("minimum".into(), json!(1));
            schema.insert("maximum".into(), json!(MAX_LIMIT));
            param["schema"] = Value::Object(schema);
        }
    }
}

/// The published document, kept to at the door of `/api/v1`.
#[derive(Clone)]
pub struct Contract(Arc<Value>);

impl Contract {
    pub fn of(document: &str) -> Self {
        Self(Arc::new(
            serde_json::from_str(document).expect("the document is JSON"),
        ))
    }

    /// The path template matching `path` (`{parameters}` match any one segment), and
    /// its operations by lower-case method.
    fn operations(&self, path: &str) -> Option<&Map<String, Value>> {
        let segments: Vec<&str> = path.split('/').collect();
        let paths = self.0["paths"].as_object()?;
        paths.iter().find_map(|(template, ops)| {
            let template: Vec<&str> = template.split('/').collect();
            let matches = template.len() == segments.len()
                && template
                    .iter()
                    .zip(&segments)
                    .all(|(t, s)| t == s || (t.starts_with('{') && !s.is_empty()));
            matches.then(|| ops.as_object()).flatten()
        })
    }

    /// The methods `path` takes, for `Allow`.
    fn allowed(&self, path: &str) -> Option<String> {
        let ops = self.operations(path)?;
        let mut methods: Vec<String> = ops.keys().map(|m| m.to_ascii_uppercase()).collect();
        if ops.contains_key("get") {
            methods.push("HEAD".into());
        }
        Some(methods.join(", "))
    }

    /// The schema of the JSON body of `method` on `path`.
    fn body_schema(&self, method: &Method, path: &str) -> Option<&Value> {
        let op = self
            .operations(path)?
            .get(&method.as_str().to_ascii_lowercase())?;
        let content = op.pointer("/requestBody/content")?.as_object()?;
        content
            .iter()
            .find(|(media, _)| media.starts_with("application/json"))
            .and_then(|(_, body)| body.get("schema"))
    }

    /// The first place in `value` where `schema` wants a string and finds another
    /// scalar. poem-openapi reads `5` or `true` as the string `"5"` or `"true"`; the
    /// document promises a string, so Kassa refuses them.
    fn misplaced_scalar(&self, schema: &Value, value: &Value, at: &str) -> Option<String> {
        let schema = self.resolve(schema);
        if value.is_null() {
            return None;
        }
        if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            return all.iter().find_map(|s| self.misplaced_scalar(s, value, at));
        }
        if let Some(any) = schema.get("oneOf").and_then(Value::as_array) {
            let misplaced: Vec<String> = any
                .iter()
                .map(|s| self.misplaced_scalar(s, value, at))
                .collect::<Option<_>>()?;
            return misplaced.into_iter().next();
        }
        match (schema.get("type").and_then(Value::as_str), value) {
            (Some("string"), Value::Number(_) | Value::Bool(_)) => Some(at.to_owned()),
            (_, Value::Array(items)) => {
                let item = schema.get("items")?;
                items
                    .iter()
                    .enumerate()
                    .find_map(|(i, v)| self.misplaced_scalar(item, v, &format!("{at}[{i}]")))
            }
            (_, Value::Object(fields)) => fields.iter().find_map(|(name, v)| {
                let field = schema
                    .pointer(&format!(
                        "/properties/{}",
                        name.replace('~', "~0").replace('/', "~1")
                    ))
                    .or_else(|| schema.get("additionalProperties").filter(|a| a.is_object()))?;
                let at = if at.is_empty() {
                    name.clone()
                } else {
                    format!("{at}.{name}")
                };
                self.misplaced_scalar(field, v, &at)
            }),
            _ => None,
        }
    }

    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => r
                .strip_prefix('#')
                .and_then(|pointer| self.0.pointer(pointer))
                .unwrap_or(schema),
            None => schema,
        }
    }
}

/// Refuses a JSON body with a number or boolean where the document says string, and
/// answers a method a path does not have with 405 and `Allow` (RFC 9110).
pub async fn keep<E: Endpoint>(
    next: E,
    mut req: Request,
    contract: Contract,
) -> poem::Result<Response> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let is_json = req
        .content_type()
        .is_some_and(|ct| ct.starts_with("application/json"));
    if let Some(schema) = contract.body_schema(&method, &path).filter(|_| is_json) {
        let body = req.take_body().into_bytes().await?;
        if let Ok(value) = serde_json::from_slice::<Value>(&body)
            && let Some(field) = contract.misplaced_scalar(schema, &value, "")
        {
            let problem = Problem::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                Some(format!("`{field}` must be a string")),
            );
            return Ok(problem.into_http());
        }
        req.set_body(body);
    }
    let answer = next.call(req).await.map(IntoResponse::into_response);
    let refused = match &answer {
        Ok(resp) => resp.status() == StatusCode::METHOD_NOT_ALLOWED,
        Err(e) => e.status() == StatusCode::METHOD_NOT_ALLOWED,
    };
    let Some(allow) = contract.allowed(&path).filter(|_| refused) else {
        return answer;
    };
    let mut resp = Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        Some(format!("{path} does not take {method}; it takes {allow}")),
    )
    .into_http();
    if let Ok(value) = HeaderValue::from_str(&allow) {
        resp.headers_mut().insert(poem::http::header::ALLOW, value);
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contract() -> Contract {
        let doc = tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(async { crate::openapi_json() });
        Contract::of(&doc)
    }

    #[test]
    fn a_number_or_boolean_where_text_is_declared_is_named() {
        let c = contract();
        let schema = c.body_schema(&Method::POST, "/license-pools").unwrap();
        let found = |body: Value| c.misplaced_scalar(schema, &body, "");
        assert_eq!(found(json!({"name": false})), Some("name".to_owned()));
        assert_eq!(
            found(json!({"name": "Main", "low_stock_threshold": 3})),
            None
        );
        let schema = c.body_schema(&Method::POST, "/orders").unwrap();
        let found = |body: Value| c.misplaced_scalar(schema, &body, "");
        assert_eq!(
            found(json!({"lines": [{"product_id": 5, "quantity": 1}]})),
            Some("lines[0].product_id".to_owned())
        );
        assert_eq!(
            found(json!({"custom": {"seat": 3}})),
            Some("custom.seat".to_owned())
        );
        let schema = c.body_schema(&Method::PATCH, "/settings").unwrap();
        assert_eq!(
            c.misplaced_scalar(schema, &json!({"bank": {"iban": 7}}), ""),
            Some("bank.iban".to_owned())
        );
    }

    #[test]
    fn allow_names_the_methods_of_the_matching_path() {
        let c = contract();
        assert_eq!(
            c.allowed("/license-pools/lpl_1").as_deref(),
            Some("GET, PATCH, HEAD")
        );
        assert_eq!(c.allowed("/nowhere"), None);
    }
}
