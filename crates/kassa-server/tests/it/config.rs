//! `deploy/kassa.toml` documents every setting and stays loadable.

use kassa::Config;

#[test]
fn the_example_config_loads_and_documents_every_setting() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/kassa.toml");
    let config = Config::load(Some(&path)).expect("deploy/kassa.toml loads");
    assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
    let text = std::fs::read_to_string(&path).unwrap();
    let defaults = toml::Value::try_from(Config::default()).unwrap();
    let documents = |key: &str| {
        text.lines().any(|l| {
            l.trim_start_matches(['#', ' '])
                .starts_with(&format!("{key} ="))
        })
    };
    for (key, value) in defaults.as_table().unwrap() {
        match value.as_table() {
            // A table (`[rate_limits]`): its header and each of its settings.
            Some(table) => {
                assert!(text.contains(&format!("\n[{key}]\n")), "no [{key}]");
                for inner in table.keys() {
                    assert!(
                        documents(inner),
                        "deploy/kassa.toml does not document `{key}.{inner}`"
                    );
                }
            }
            None => assert!(
                documents(key),
                "deploy/kassa.toml does not document `{key}`"
            ),
        }
    }
    assert_eq!(config.rate_limits, kassa_limits::LimitsConfig::default());
}

#[test]
fn defaults_need_no_configuration() {
    let config = Config::default();
    assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(config.public_url(), "http://127.0.0.1:8080");
    assert!(format!("{config:?}").contains("sqlite://data/kassa.db"));
}
