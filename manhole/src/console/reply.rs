//! A command's result, in the two forms a session shows: text for people, JSON for programs.

use std::time::Duration;

use crate::json::Json;

/// A command that failed: a stable code for programs and a message for people.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Failure {
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

/// A command's result.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Reply {
    /// The text a person sees (ending in a newline, or empty).
    pub(crate) text: String,
    /// The same result as data, for machine mode.
    pub(crate) data: Json,
    pub(crate) failure: Option<Failure>,
}

impl Reply {
    pub(crate) fn ok(text: impl Into<String>, data: Json) -> Reply {
        Reply {
            text: text.into(),
            data,
            failure: None,
        }
    }

    pub(crate) fn fail(code: &'static str, message: impl Into<String>) -> Reply {
        let message = message.into();
        Reply {
            text: format!("error: {message}\n"),
            data: Json::Null,
            failure: Some(Failure { code, message }),
        }
    }
}

/// What the session does after a command.
#[derive(Debug, PartialEq)]
pub(crate) enum Outcome {
    /// Show the reply and prompt again.
    Reply(Reply),
    /// Run `command` every `every` until `count` runs are done or the client types a line.
    Watch {
        every: Duration,
        count: Option<u64>,
        command: String,
    },
    /// Switch between text and machine mode.
    Machine(bool),
    /// End the session.
    Quit,
}

impl From<Reply> for Outcome {
    fn from(reply: Reply) -> Outcome {
        Outcome::Reply(reply)
    }
}
