//! The texts of pages and emails, one file per language under `web/locales`.

use std::collections::BTreeMap;
use std::sync::LazyLock;

/// The texts of one language.
pub type Texts = BTreeMap<String, String>;

static LOCALES: LazyLock<Vec<(&'static str, Texts)>> = LazyLock::new(|| {
    [
        ("en", include_str!("../../../web/locales/en.toml")),
        ("ru", include_str!("../../../web/locales/ru.toml")),
    ]
    .into_iter()
    .map(|(lang, source)| {
        let texts: Texts = toml::from_str(source)
            .unwrap_or_else(|e| panic!("web/locales/{lang}.toml does not parse: {e}"));
        (lang, texts)
    })
    .collect()
});

/// The language Kassa speaks for a language tag (`ru`, `ru-RU`, `EN_us`), if it
/// speaks it. Any text is a fine input: it is compared, never cut by bytes.
pub fn language_of(tag: &str) -> Option<&'static str> {
    let primary = tag.trim().split(['-', '_']).next().unwrap_or_default();
    LOCALES
        .iter()
        .map(|(l, _)| *l)
        .find(|l| l.eq_ignore_ascii_case(primary))
}

/// The language spoken when no other is asked for or known.
pub fn default_locale() -> &'static str {
    LOCALES[0].0
}

/// The texts of `lang`, or of the default language.
pub fn texts(lang: &str) -> &'static Texts {
    let found = LOCALES.iter().find(|(l, _)| *l == lang);
    &found.unwrap_or(&LOCALES[0]).1
}
