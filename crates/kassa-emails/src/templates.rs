//! Compiling templates into the binary, for emails and pages alike.

use minijinja::Environment;

/// An environment of `(name, source)` templates. Values are HTML-escaped in `.html`
/// templates (minijinja's default, by the name's ending) and left as written in
/// `.txt` ones. A template that does not parse is a bug: it panics on first use.
pub fn environment(
    templates: impl IntoIterator<Item = (&'static str, &'static str)>,
) -> Environment<'static> {
    let mut env = Environment::new();
    for (name, source) in templates {
        env.add_template(name, source)
            .unwrap_or_else(|e| panic!("template {name} does not parse: {e}"));
    }
    env
}
