//! The HTTP surface: bad input of every kind, limits, probes, GraphiQL and the schema file.

use crate::common::*;
use serde_json::{Value, json};

fn register_input(overrides: Value) -> Value {
    let mut input = json!({ "email": "valid@example.com", "password": PASSWORD, "name": "Val", "role": "PATIENT" });
    for (key, value) in overrides.as_object().unwrap() {
        input[key] = value.clone();
    }
    json!({ "input": input })
}

#[tokio::test]
async fn bad_inputs_get_a_code_and_write_nothing() {
    let app = spawn_app().await;
    let cases: Vec<(&str, Value, &str, Option<&str>)> = vec![
        (
            "empty email",
            register_input(json!({ "email": "" })),
            "BAD_USER_INPUT",
            Some("email"),
        ),
        (
            "bad email",
            register_input(json!({ "email": "not-an-email" })),
            "BAD_USER_INPUT",
            Some("email"),
        ),
        (
            "email without domain dot",
            register_input(json!({ "email": "a@localhost" })),
            "BAD_USER_INPUT",
            Some("email"),
        ),
        (
            "huge email",
            register_input(json!({ "email": format!("{}@example.com", "a".repeat(300)) })),
            "BAD_USER_INPUT",
            Some("email"),
        ),
        (
            "empty password",
            register_input(json!({ "password": "" })),
            "BAD_USER_INPUT",
            Some("password"),
        ),
        (
            "short password",
            register_input(json!({ "password": "1234567" })),
            "BAD_USER_INPUT",
            Some("password"),
        ),
        (
            "long password",
            register_input(json!({ "password": "x".repeat(129) })),
            "BAD_USER_INPUT",
            Some("password"),
        ),
        (
            "empty name",
            register_input(json!({ "name": "   " })),
            "BAD_USER_INPUT",
            Some("name"),
        ),
        (
            "long name",
            register_input(json!({ "name": "n".repeat(101) })),
            "BAD_USER_INPUT",
            Some("name"),
        ),
        (
            "bad phone",
            register_input(json!({ "phone": "call me" })),
            "BAD_USER_INPUT",
            Some("phone"),
        ),
        (
            "bad role",
            register_input(json!({ "role": "KING" })),
            "BAD_USER_INPUT",
            None,
        ),
        (
            "admin role",
            register_input(json!({ "role": "ADMIN" })),
            "BAD_USER_INPUT",
            Some("role"),
        ),
        (
            "wrong type",
            register_input(json!({ "password": 12345678 })),
            "BAD_USER_INPUT",
            None,
        ),
        (
            "missing field",
            json!({ "input": { "email": "valid@example.com", "role": "PATIENT" } }),
            "BAD_USER_INPUT",
            None,
        ),
    ];
    for (name, variables, code, field) in cases {
        let body = app.graphql(REGISTER, variables, None).await;
        assert_eq!(error_code(&body), Some(code), "{name}: {body}");
        if field.is_some() {
            assert_eq!(error_field(&body), field, "{name}: {body}");
        }
        assert!(body["data"].is_null(), "{name}: {body}");
    }
    assert_eq!(app.count_rows("users").await, 0, "no bad input wrote a row");
    assert_eq!(app.count_rows("refresh_tokens").await, 0);

    // Still serving, and the valid version of the same request works.
    app.ok(REGISTER, register_input(json!({})), None).await;
    assert_eq!(app.count_rows("users").await, 1);
}

/// PostgreSQL refuses NUL in any text, so the fuzzer's NULs came back INTERNAL from a login, a
/// search filter and a chat message. Text holding one is refused up front, on every backend,
/// wherever it sits in the request.
#[tokio::test]
async fn text_holding_nul_is_bad_input_wherever_it_is() {
    let app = spawn_app().await;
    let patient = app.register_patient().await;
    let login = app.login("ann\u{0}@example.com", PASSWORD).await;
    assert_eq!(
        error_code(&login),
        Some("BAD_USER_INPUT"),
        "in a variable: {login}"
    );
    for query in [
        r#"{ doctors(filter: { text: "heart\u0000" }) { totalCount } }"#,
        r#"query($t: String = "x\u0000") { doctors(filter: { text: $t }) { totalCount } }"#,
        r#"{ ...F } fragment F on Query { doctors(filter: { specialization: "\u0000" }) { totalCount } }"#,
        r#"{ ... on Query { doctors(filter: { language: "\u0000" }) { totalCount } } }"#,
        r#"mutation { updateDoctorProfile(input: { languages: ["en", "\u0000"] }) { id } }"#,
    ] {
        let body = app.graphql(query, json!({}), None).await;
        assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{query}: {body}");
        assert!(error_message(&body).contains("NUL"), "{body}");
    }

    // Over a socket it is refused before it runs, as the protocol's `error` message.
    let mut socket = app.ws_client(&patient.access).await;
    socket
        .subscribe(
            "chat",
            "mutation($b: String!) { sendMessage(input: { channel: { lobby: true }, body: $b }) { id } }",
            json!({ "b": "hello\u{0}" }),
        )
        .await;
    let refused = socket.message_for("chat").await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(
        refused["payload"][0]["extensions"]["code"],
        "BAD_USER_INPUT"
    );
    assert_eq!(app.count_rows("chat_messages").await, 0);

    let fine = app
        .ok(
            r#"{ doctors(filter: { text: "heart" }) { totalCount } }"#,
            json!({}),
            None,
        )
        .await;
    assert_eq!(fine["doctors"]["totalCount"], 0);
}

#[tokio::test]
async fn malformed_documents_and_limits_are_refused_with_codes() {
    let app = spawn_app().await;
    let deep = format!(
        "{{ __type(name: \"User\") {{ {} name {} }} }}",
        "fields { type { ofType { ofType { ".repeat(5),
        "} } } }".repeat(5)
    );
    let wide = format!(
        "{{ {} }}",
        // 2 each: 6,000 against the limit of 5,000.
        (0..3000)
            .map(|i| format!("a{i}: me {{ id }}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    for (name, query) in [
        ("syntax error", "{ me { id "),
        ("unknown field", "{ nothing }"),
        ("unknown operation type", "subscription { me { id } }"),
        ("too deep", deep.as_str()),
        ("too complex", wide.as_str()),
    ] {
        let body = app.graphql(query, json!({}), None).await;
        assert_eq!(
            error_code(&body),
            Some("BAD_USER_INPUT"),
            "{name}: {}",
            body["errors"]
        );
    }

    for (name, raw, status) in [
        ("not JSON", "{{{", 400),
        ("empty body", "", 400),
        ("no query", "{\"variables\": {}}", 400),
    ] {
        let response = app
            .client
            .post(app.url("/graphql"))
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{name}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{name}: {body}");
    }

    let huge = json!({ "query": REGISTER, "variables": register_input(json!({ "name": "x".repeat(2 * 1024 * 1024) })) });
    let response = app
        .client
        .post(app.url("/graphql"))
        .json(&huge)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");

    assert_eq!(app.count_rows("users").await, 0);
    app.ok("{ __typename }", json!({}), None).await;
}

#[tokio::test]
async fn graphiqls_introspection_fits_the_limits() {
    let app = spawn_app().await;
    let data = app.ok(INTROSPECTION, json!({}), None).await;
    let types = data["__schema"]["types"].as_array().unwrap();
    assert!(types.iter().any(|t| t["name"] == "User"));
}

#[tokio::test]
async fn graphiql_is_served_and_wired_to_the_websocket() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/graphql"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = response.text().await.unwrap();
    assert!(page.contains("graphiql"), "GraphiQL page");
    assert!(
        page.contains("/graphql/ws"),
        "subscriptions go to /graphql/ws"
    );
}

#[tokio::test]
async fn probes_answer_and_responses_carry_a_request_id() {
    let app = spawn_app().await;
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert!(health.headers().contains_key("x-request-id"));

    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    let expected = if std::env::var("MEDILINK_TEST_DATABASE_URL").is_ok_and(|v| !v.is_empty()) {
        "postgres"
    } else {
        "sqlite"
    };
    assert_eq!(body["database"], expected);

    let echoed = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "trace-me-42");
}

#[tokio::test]
async fn readyz_reports_a_database_that_stopped_answering() {
    let app = spawn_app().await;
    app.db.close().await;
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200, "the process itself is fine");
}

#[tokio::test]
async fn internal_failures_show_no_internals_and_give_a_request_id() {
    let app = spawn_app().await;
    let ann = app.register_patient().await;
    app.db.close().await;
    let response = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(&ann.access)
        .json(&json!({ "query": "{ me { id } }" }))
        .send()
        .await
        .unwrap();
    let header_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), Some("INTERNAL"), "{body}");
    assert_eq!(error_message(&body), "internal server error");
    assert_eq!(
        body["errors"][0]["extensions"]["requestId"],
        header_id.as_str()
    );
    let text = body.to_string().to_lowercase();
    for internal in ["sqlx", "pool", "sql", "database"] {
        assert!(!text.contains(internal), "leaks {internal:?}: {body}");
    }
}

#[test]
fn schema_file_matches_the_code() {
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql"))
        .expect("schema.graphql at the crate root");
    assert!(
        committed == medilink::schema::sdl(),
        "schema.graphql is stale: run `cargo run -- print-schema > schema.graphql`"
    );
}

/// The query GraphiQL sends on load (graphql-js `getIntrospectionQuery()`).
const INTROSPECTION: &str = r#"
query IntrospectionQuery {
  __schema {
    queryType { name } mutationType { name } subscriptionType { name }
    types { ...FullType }
    directives { name description locations args { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description
  fields(includeDeprecated: true) { name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason }
  inputFields { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name
    ofType { kind name ofType { kind name ofType { kind name } } } } } } } }
}
"#;

#[tokio::test]
async fn the_demo_page_is_one_self_contained_page() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/demo")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = response.text().await.unwrap();
    assert!(page.contains("/graphql/ws"), "talks to the API's socket");
    for external in ["http://", "https://", "//cdn", "src=\"//"] {
        assert!(
            !page.contains(external),
            "loads nothing from elsewhere: {external}"
        );
    }
}

#[tokio::test]
async fn graphiql_assets_can_come_from_a_local_folder() {
    let assets = tempfile::tempdir().unwrap();
    let graphiql = assets.path().join("graphiql@4");
    std::fs::create_dir_all(&graphiql).unwrap();
    std::fs::write(graphiql.join("graphiql.min.js"), "window.GraphiQL = {};").unwrap();
    let folder = assets.path().to_owned();
    let app = spawn_app_with(|c| c.graphiql_assets = Some(folder)).await;

    let page = app
        .client
        .get(app.url("/graphql"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    let page = page.text().await.unwrap();
    assert!(
        page.contains("src=\"/graphql/assets/graphiql@4/graphiql.min.js\""),
        "{page}"
    );
    assert!(page.contains("/graphql/assets/react@18/umd/react.development.js"));
    assert!(!page.contains("https://"), "nothing from a CDN: {page}");

    let script = app
        .client
        .get(app.url("/graphql/assets/graphiql@4/graphiql.min.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), 200);
    assert_eq!(script.text().await.unwrap(), "window.GraphiQL = {};");
    let missing = app
        .client
        .get(app.url("/graphql/assets/../Cargo.toml"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

async fn preflight(app: &TestApp, origin: &str) -> reqwest::Response {
    app.client
        .request(reqwest::Method::OPTIONS, app.url("/graphql"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
        .await
        .unwrap()
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn cors_answers_the_public_origins_only_and_never_with_credentials() {
    let app = spawn_app_with(|c| {
        c.public_origins = "https://app.example.com, http://localhost:3000".into();
    })
    .await;
    let allowed = preflight(&app, "http://localhost:3000").await;
    assert!(allowed.status().is_success(), "{}", allowed.status());
    assert_eq!(
        header(&allowed, "access-control-allow-origin"),
        Some("http://localhost:3000")
    );
    let headers = header(&allowed, "access-control-allow-headers").unwrap_or_default();
    assert!(headers.contains("authorization"), "{headers}");
    assert_eq!(header(&allowed, "access-control-allow-credentials"), None);

    let stranger = preflight(&app, "https://evil.example.com").await;
    assert_eq!(header(&stranger, "access-control-allow-origin"), None);

    let post = app
        .client
        .post(app.url("/graphql"))
        .header("origin", "https://app.example.com")
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&post, "access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert!(
        header(&post, "access-control-expose-headers").is_some_and(|h| h.contains("x-request-id"))
    );
}

#[tokio::test]
async fn without_public_origins_no_cross_origin_access_is_granted() {
    let app = spawn_app().await;
    let response = preflight(&app, "https://app.example.com").await;
    assert_eq!(header(&response, "access-control-allow-origin"), None);
}

#[tokio::test]
async fn responses_carry_the_hardening_headers() {
    let app = spawn_app().await;
    for path in ["/healthz", "/graphql", "/demo"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(
            header(&response, "x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(header(&response, "x-frame-options"), Some("DENY"), "{path}");
        assert_eq!(
            header(&response, "referrer-policy"),
            Some("no-referrer"),
            "{path}"
        );
    }
}

const JSON_TYPE: &str = "application/json; charset=utf-8";
const GRAPHQL_RESPONSE_TYPE: &str = "application/graphql-response+json; charset=utf-8";

/// POSTs `body` as JSON with an `Accept` header, if given: (status, content type, JSON body).
async fn post_accepting(app: &TestApp, accept: Option<&str>, body: &Value) -> (u16, String, Value) {
    let mut request = app.client.post(app.url("/graphql")).json(body);
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    read(request.send().await.unwrap()).await
}

/// GETs /graphql with `params` as its query string and an `Accept` header.
async fn get_graphql(app: &TestApp, accept: &str, params: &[(&str, &str)]) -> reqwest::Response {
    let url = reqwest::Url::parse_with_params(&app.url("/graphql"), params).unwrap();
    let request = app.client.get(url).header("accept", accept);
    request.send().await.unwrap()
}

async fn read(response: reqwest::Response) -> (u16, String, Value) {
    let status = response.status().as_u16();
    let content_type = header(&response, "content-type")
        .unwrap_or_default()
        .to_owned();
    let body = response.json().await.expect("a JSON body");
    (status, content_type, body)
}

#[tokio::test]
async fn responses_have_the_media_type_the_client_accepts() {
    let app = spawn_app().await;
    let query = json!({ "query": "{ __typename }" });
    for (accept, content_type) in [
        (None, JSON_TYPE),
        (Some("*/*"), JSON_TYPE),
        (Some("application/json"), JSON_TYPE),
        (Some("text/html"), JSON_TYPE),
        (
            Some("application/graphql-response+json"),
            GRAPHQL_RESPONSE_TYPE,
        ),
        (
            Some("application/graphql-response+json, application/json;q=0.9"),
            GRAPHQL_RESPONSE_TYPE,
        ),
        (
            Some("application/graphql-response+json;q=0.5, application/json"),
            JSON_TYPE,
        ),
        (
            Some("application/graphql-response+json;q=0, */*"),
            JSON_TYPE,
        ),
    ] {
        let (status, got, body) = post_accepting(&app, accept, &query).await;
        assert_eq!((status, got.as_str()), (200, content_type), "{accept:?}");
        assert_eq!(
            body,
            json!({ "data": { "__typename": "Query" } }),
            "{accept:?}"
        );
    }
}

/// With `application/graphql-response+json` a request that never ran is a 400 without `data`;
/// with `application/json` it stays a 200 (without `data` too); a field error still has data.
#[tokio::test]
async fn requests_that_never_ran_are_400_for_graphql_response_json() {
    let app = spawn_app().await;
    for (name, request) in [
        ("parse error", json!({ "query": "{" })),
        ("unknown field", json!({ "query": "{ nothing }" })),
        (
            "variable coercion",
            json!({ "query": "query($n: String!) { __type(name: $n) { name } }", "variables": { "n": null } }),
        ),
        (
            "unknown operation",
            json!({ "query": "query A { __typename }", "operationName": "B" }),
        ),
    ] {
        let graphql_response = Some("application/graphql-response+json");
        let (status, content_type, body) = post_accepting(&app, graphql_response, &request).await;
        assert_eq!(status, 400, "{name}: {body}");
        assert_eq!(content_type, GRAPHQL_RESPONSE_TYPE, "{name}");
        assert!(body.get("data").is_none(), "{name}: {body}");
        assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{name}: {body}");

        let (status, content_type, body) =
            post_accepting(&app, Some("application/json"), &request).await;
        assert_eq!((status, content_type.as_str()), (200, JSON_TYPE), "{name}");
        assert!(body.get("data").is_none(), "{name}: {body}");
        assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{name}: {body}");
    }

    let accept = Some("application/graphql-response+json");
    let field_error = json!({ "query": "{ me { id } }" });
    let (status, _, body) = post_accepting(&app, accept, &field_error).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body.get("data"), Some(&Value::Null), "{body}");
    assert_eq!(error_code(&body), Some("UNAUTHENTICATED"), "{body}");
}

#[tokio::test]
async fn get_runs_queries_with_url_encoded_variables() {
    let app = spawn_app().await;
    let query = "query Type($name: String!) { __type(name: $name) { name } }";
    for accept in ["application/json", "application/graphql-response+json"] {
        let response = get_graphql(
            &app,
            accept,
            &[("query", query), ("variables", r#"{"name":"User"}"#)],
        )
        .await;
        let (status, _, body) = read(response).await;
        assert_eq!(status, 200, "{accept}: {body}");
        assert_eq!(body, json!({ "data": { "__type": { "name": "User" } } }));
    }

    let two = "query A { a: __typename } query B { b: __typename }";
    let response = get_graphql(&app, "*/*", &[("query", two), ("operationName", "B")]).await;
    let (status, _, body) = read(response).await;
    assert_eq!((status, body), (200, json!({ "data": { "b": "Query" } })));

    for (name, params) in [
        ("no query", vec![]),
        ("empty query", vec![("query", "")]),
        (
            "variables not JSON",
            vec![("query", query), ("variables", "{name")],
        ),
        (
            "variables not a map",
            vec![("query", query), ("variables", "[1]")],
        ),
        (
            "extensions not a map",
            vec![("query", query), ("extensions", "7")],
        ),
    ] {
        let response = get_graphql(&app, "application/json", &params).await;
        let (status, content_type, body) = read(response).await;
        assert_eq!((status, content_type.as_str()), (400, JSON_TYPE), "{name}");
        assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{name}: {body}");
    }
}

#[tokio::test]
async fn mutations_over_get_are_refused_with_405_and_not_run() {
    let app = spawn_app().await;
    let variables = register_input(json!({})).to_string();
    let mixed = format!(
        "query Q {{ __typename }} {}",
        REGISTER.replacen("mutation", "mutation M", 1)
    );
    for params in [
        vec![("query", REGISTER), ("variables", variables.as_str())],
        vec![
            ("query", mixed.as_str()),
            ("operationName", "M"),
            ("variables", variables.as_str()),
        ],
    ] {
        let response = get_graphql(&app, "application/json", &params).await;
        assert_eq!(header(&response, "allow"), Some("POST"));
        let (status, _, body) = read(response).await;
        assert_eq!(status, 405, "{body}");
        assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    }
    assert_eq!(app.count_rows("users").await, 0, "no mutation ran");

    // The query of the same document may run over GET.
    let query = [("query", mixed.as_str()), ("operationName", "Q")];
    let (status, _, body) = read(get_graphql(&app, "application/json", &query).await).await;
    assert_eq!(
        (status, body),
        (200, json!({ "data": { "__typename": "Query" } }))
    );

    let put = app.client.put(app.url("/graphql")).send().await.unwrap();
    assert_eq!(header(&put, "allow"), Some("GET, POST"));
    let (status, _, body) = read(put).await;
    assert_eq!(status, 405);
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
}

#[tokio::test]
async fn posts_need_a_json_or_multipart_content_type() {
    let app = spawn_app().await;
    let body = json!({ "query": REGISTER, "variables": register_input(json!({})) }).to_string();
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut request = app.client.post(app.url("/graphql")).body(body.clone());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let (status, got, body) = read(request.send().await.unwrap()).await;
        assert_eq!((status, got.as_str()), (415, JSON_TYPE), "{content_type:?}");
        assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
        assert!(error_message(&body).contains("Content-Type"), "{body}");
    }
    assert_eq!(app.count_rows("users").await, 0);

    let charset = app
        .client
        .post(app.url("/graphql"))
        .header("content-type", "Application/JSON; charset=utf-8")
        .body(body)
        .send()
        .await
        .unwrap();
    let (status, _, body) = read(charset).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.count_rows("users").await, 1);
}

/// A batch whose every operation is `query` but the mutation, which registers `email`.
fn batch_with_register(query: &str, operations: usize, email: &str) -> Value {
    let mut batch = vec![json!({ "query": query }); operations - 1];
    let register =
        json!({ "query": REGISTER, "variables": register_input(json!({ "email": email })) });
    batch.insert(operations / 2, register);
    Value::Array(batch)
}

#[tokio::test]
async fn a_batch_holds_at_most_max_batch_operations() {
    let app = spawn_app().await;
    assert_eq!(app.config.max_batch, 10, "the default");
    let over = batch_with_register("{ __typename }", 11, "over@example.com");
    let (status, _, body) = post_accepting(&app, None, &over).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    assert!(error_message(&body).contains("at most 10"), "{body}");
    assert_eq!(app.count_rows("users").await, 0, "nothing of it ran");

    let full = batch_with_register("{ __typename }", 10, "full@example.com");
    let (status, _, body) = post_accepting(&app, None, &full).await;
    assert_eq!(status, 200, "{body}");
    let responses = body.as_array().unwrap();
    assert_eq!(responses.len(), 10);
    assert!(
        responses.iter().all(|r| r.get("errors").is_none()),
        "{body}"
    );
    assert_eq!(app.count_rows("users").await, 1);

    let app = spawn_app_with(|c| c.max_batch = 2).await;
    let over = batch_with_register("{ __typename }", 3, "over@example.com");
    let (status, _, body) = post_accepting(&app, None, &over).await;
    assert_eq!(status, 400, "{body}");
    assert!(error_message(&body).contains("at most 2"), "{body}");
    assert_eq!(app.count_rows("users").await, 0);
}

/// Each of these queries fits the complexity limit alone; three of them in one batch do not,
/// and then nothing of the batch runs.
#[tokio::test]
async fn a_batch_shares_one_complexity_budget() {
    let app = spawn_app().await;
    let limit = app.config.query_complexity_limit;
    // `me { id }` costs 2.
    let wide = format!(
        "{{ {} }}",
        (0..limit / 4)
            .map(|i| format!("a{i}: me {{ id }}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let alone = app.graphql(&wide, json!({}), None).await;
    assert_eq!(
        error_code(&alone),
        Some("UNAUTHENTICATED"),
        "it ran: {}",
        alone["errors"][0]
    );

    let three = batch_with_register(&wide, 4, "three@example.com");
    let (status, _, body) = post_accepting(&app, None, &three).await;
    assert_eq!(status, 400, "the batch was not refused");
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    assert!(error_message(&body).contains("too complex"), "{body}");
    assert_eq!(app.count_rows("users").await, 0, "nothing of it ran");

    let one = batch_with_register(&wide, 2, "one@example.com");
    let (status, _, body) = post_accepting(&app, None, &one).await;
    assert_eq!(status, 200, "{:?}", body.get("errors"));
    assert_eq!(body.as_array().map(Vec::len), Some(2));
    assert_eq!(
        app.count_rows("users").await,
        1,
        "the batch within budget ran"
    );
}
