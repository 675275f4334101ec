//! The committed `docs/openapi.json` is the document the server serves.

#[tokio::test]
async fn the_committed_openapi_document_matches_the_code() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let current = kassa_api::openapi_json();
    if std::env::var_os("KASSA_UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, format!("{current}\n")).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed.trim_end() == current.trim_end(),
        "docs/openapi.json is out of date: run `KASSA_UPDATE_OPENAPI=1 cargo test -p kassa --test it openapi` and commit it"
    );
}
