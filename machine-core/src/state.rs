//! Machine states, spelled as docker-machine spells them.

use std::fmt;
use std::str::FromStr;

/// The state of a machine as reported by its driver.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[non_exhaustive]
pub enum State {
    /// The driver could not tell (printed as an empty string).
    #[default]
    #[serde(rename = "")]
    None,
    Running,
    Paused,
    Saved,
    Stopped,
    Stopping,
    Starting,
    Error,
    Timeout,
}

impl State {
    /// All states, in docker-machine's order.
    pub const ALL: [State; 9] = [
        State::None,
        State::Running,
        State::Paused,
        State::Saved,
        State::Stopped,
        State::Stopping,
        State::Starting,
        State::Error,
        State::Timeout,
    ];

    /// The string docker-machine prints for this state.
    pub fn as_str(self) -> &'static str {
        match self {
            State::None => "",
            State::Running => "Running",
            State::Paused => "Paused",
            State::Saved => "Saved",
            State::Stopped => "Stopped",
            State::Stopping => "Stopping",
            State::Starting => "Starting",
            State::Error => "Error",
            State::Timeout => "Timeout",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown machine state {0:?}")]
pub struct ParseStateError(pub String);

impl FromStr for State {
    type Err = ParseStateError;

    /// Parses a state name case-insensitively; the empty string is [`State::None`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        State::ALL
            .iter()
            .copied()
            .find(|st| st.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| ParseStateError(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_state() {
        for st in State::ALL {
            assert_eq!(st.to_string().parse::<State>(), Ok(st));
        }
        assert_eq!("running".parse::<State>(), Ok(State::Running));
        assert!("Exploded".parse::<State>().is_err());
        assert_eq!(State::default().to_string(), "");
    }
}
