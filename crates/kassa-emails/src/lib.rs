//! Renders every email Kassa sends, from `web/emails`, in the order's language with the store's branding.
//!
//! It also holds what emails and the customer pages both show: the texts of each
//! language, the store's branding and the order as a reader sees it. It sends nothing
//! (that is `kassa-mail`) and serves no page (that is `kassa-web`).

mod render;
mod templates;
mod texts;
mod view;

pub use render::{Loaded, RenderError, RenderedEmail, render, render_from};
pub use templates::environment;
pub use texts::{Texts, default_locale, language_of, texts};
pub use view::{Brand, OrderView, brand, method_label, money, order_view};
