//! Sends email over SMTP (lettre): `smtp://host:port` (plain, or STARTTLS when the
//! server offers it), `smtps://host:port` (TLS from the start), with
//! `user:password@` for authentication. What to send is decided elsewhere; this crate
//! only delivers a rendered message and says whether a failure is worth retrying.

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// Why an email was not sent.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The message itself is wrong (a bad address): retrying will not help.
    #[error("{0}")]
    Permanent(String),
    /// The server is down or refused for now: try again later.
    #[error("{0}")]
    Transient(String),
}

/// One email, ready to send.
#[derive(Debug, Clone)]
pub struct Outgoing<'a> {
    pub to: &'a str,
    /// Shown as the sender's name; the address is the configured `email_from`.
    pub from_name: &'a str,
    pub reply_to: Option<&'a str>,
    pub subject: &'a str,
    pub text: &'a str,
    pub html: &'a str,
}

/// An SMTP connection pool to one server.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from_address: String,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("from_address", &self.from_address)
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// A mailer for `smtp://…` or `smtps://…`, sending from `from_address`.
    pub fn new(url: &str, from_address: &str) -> Result<Self, MailError> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| MailError::Permanent(format!("the SMTP URL is not valid: {e}")))?
            .timeout(Some(std::time::Duration::from_secs(20)))
            .build();
        from_address
            .parse::<lettre::Address>()
            .map_err(|e| MailError::Permanent(format!("email_from is not an address: {e}")))?;
        Ok(Self {
            transport,
            from_address: from_address.to_owned(),
        })
    }

    pub async fn send(&self, mail: &Outgoing<'_>) -> Result<(), MailError> {
        let permanent =
            |what: &str, e: &dyn std::fmt::Display| MailError::Permanent(format!("{what}: {e}"));
        let from = Mailbox::new(
            Some(mail.from_name.to_owned()),
            self.from_address
                .parse()
                .map_err(|e| permanent("from", &e))?,
        );
        let mut builder = Message::builder()
            .from(from)
            .to(mail.to.parse().map_err(|e| permanent("to", &e))?)
            .subject(mail.subject);
        if let Some(reply_to) = mail.reply_to {
            builder = builder.reply_to(reply_to.parse().map_err(|e| permanent("reply-to", &e))?);
        }
        let message = builder
            .multipart(
                MultiPart::alternative()
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_PLAIN)
                            .body(mail.text.to_owned()),
                    )
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_HTML)
                            .body(mail.html.to_owned()),
                    ),
            )
            .map_err(|e| permanent("message", &e))?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(MailError::Permanent(e.to_string())),
            Err(e) => Err(MailError::Transient(e.to_string())),
        }
    }
}
