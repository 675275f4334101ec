//! `deploy/kassa.toml` documents every setting and stays loadable.

use kassa::Config;

#[test]
fn the_example_config_loads_and_documents_every_setting() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/kassa.toml");
    let config = Config::load(Some(&path)).expect("deploy/kassa.toml loads");
    assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
    let text = std::fs::read_to_string(&path).unwrap();
    let defaults = toml::Value::try_from(Config::default()).unwrap();
    for key in defaults.as_table().unwrap().keys() {
        assert!(
            text.lines().any(|l| l
                .trim_start_matches(['#', ' '])
                .starts_with(&format!("{key} ="))),
            "deploy/kassa.toml does not document `{key}`"
        );
    }
}

#[test]
fn defaults_need_no_configuration() {
    let config = Config::default();
    assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(config.public_url(), "http://127.0.0.1:8080");
    assert!(format!("{config:?}").contains("sqlite://data/kassa.db"));
}
