//! When and how long to wait before trying a failed request again.
//!
//! Rate limits (429) and server errors (5xx) usually pass, so cairn retries them a bounded
//! number of times with exponential backoff and jitter (so many clients do not retry in
//! lockstep), and waits exactly as long as the server asks when it sends `Retry-After`.
//! Each wait is announced as a [`RetryNotice`] so the user sees why nothing is happening.
//! Only the request is retried, never a stream that already produced output, which would
//! show the user the same text twice.

use std::fmt;
use std::time::Duration;

use reqwest::header::HeaderMap;

/// How persistent to be. The defaults suit interactive use; tests shrink the delays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; 1 means never retry.
    pub max_attempts: u32,
    /// The wait before the first retry; each later one doubles it.
    pub base_delay: Duration,
    /// No wait is longer. A server asking for longer than this ends the retries.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt number `attempt` (1-based), or `None` to give up.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        if let Some(asked) = retry_after {
            return (asked <= self.max_delay).then_some(asked);
        }
        let exponent = attempt.saturating_sub(1).min(20);
        let full = self.base_delay.saturating_mul(1 << exponent).min(self.max_delay);
        // Half fixed, half random: never less than half the backoff, never in lockstep.
        let half = full / 2;
        Some(half + half.mul_f64(fastrand::f64()))
    }
}

/// A retry about to happen, for the user to see (`retrying in 2s (429 Too Many Requests)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryNotice {
    /// The attempt that failed, from 1.
    pub attempt: u32,
    pub max_attempts: u32,
    pub delay: Duration,
    /// What failed: an HTTP status with its reason, or a transport error.
    pub reason: String,
}

impl fmt::Display for RetryNotice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.delay.as_secs_f64();
        if secs >= 1.0 && self.delay.subsec_millis() == 0 {
            write!(f, "retrying in {}s ({})", self.delay.as_secs(), self.reason)?;
        } else {
            write!(f, "retrying in {secs:.1}s ({})", self.reason)?;
        }
        write!(f, ", attempt {} of {}", self.attempt + 1, self.max_attempts)
    }
}

/// How long the server asked us to wait: OpenAI's `retry-after-ms`, or the standard
/// `Retry-After` in seconds or as an HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let header =
        |name: &str| headers.get(name).and_then(|value| value.to_str().ok()).map(str::trim);
    if let Some(ms) = header("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        return duration_from_secs(ms / 1000.0);
    }
    let value = header("retry-after")?;
    if let Ok(secs) = value.parse::<f64>() {
        return duration_from_secs(secs);
    }
    let when = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
    let wait = jiff::Timestamp::now().duration_until(when);
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

fn duration_from_secs(secs: f64) -> Option<Duration> {
    Duration::try_from_secs_f64(secs.max(0.0)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn backoff_grows_is_jittered_and_bounded() {
        let policy = RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(250),
        };
        for _ in 0..100 {
            let first = policy.delay(1, None).unwrap();
            assert!((50..=100).contains(&first.as_millis()), "{first:?}");
            let second = policy.delay(2, None).unwrap();
            assert!((100..=200).contains(&second.as_millis()), "{second:?}");
            let third = policy.delay(3, None).unwrap();
            assert!((125..=250).contains(&third.as_millis()), "{third:?}");
        }
        assert_eq!(policy.delay(4, None), None);
    }

    #[test]
    fn retry_after_is_honoured_unless_too_long() {
        let policy = RetryPolicy { max_attempts: 3, ..RetryPolicy::default() };
        assert_eq!(policy.delay(1, Some(Duration::from_secs(7))), Some(Duration::from_secs(7)));
        assert_eq!(policy.delay(1, Some(Duration::from_secs(3600))), None);
    }

    #[test]
    fn retry_after_headers() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("3"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        headers.insert("retry-after-ms", HeaderValue::from_static("1500"));
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(1500)));
        let mut past = HeaderMap::new();
        past.insert("retry-after", HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert_eq!(retry_after(&past), Some(Duration::ZERO));
        let mut junk = HeaderMap::new();
        junk.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&junk), None);
    }

    #[test]
    fn notice_reads_well() {
        let notice = RetryNotice {
            attempt: 1,
            max_attempts: 5,
            delay: Duration::from_secs(2),
            reason: "429 Too Many Requests".into(),
        };
        assert_eq!(notice.to_string(), "retrying in 2s (429 Too Many Requests), attempt 2 of 5");
    }
}
