//! Progress of long operations.
//!
//! Operations that take a while (create, provision, upgrade, regenerate-certs)
//! take a [`Progress`] callback, called once per step with a short line. Code
//! that runs inside such an operation but has no callback in its signature (a
//! driver building a machine image, say) reports with [`report`]: the line is
//! logged and, while the operation runs under [`forward`], also reaches the
//! operation's callback, so every front end (CLI, Python, Node) shows it.
//! Code that hears of steps on another thread (a driver plugin's output
//! reader) takes the operation's [`Listener`] along.

use std::future::Future;
use tokio::sync::mpsc;

/// A progress callback (one line per call).
pub type Progress<'a> = &'a (dyn Fn(&str) + Send + Sync);

tokio::task_local! {
    static SINK: mpsc::UnboundedSender<String>;
}

/// Report a step of the current operation: logged, and passed to the
/// operation's callback when one is listening (see [`forward`]).
pub fn report(step: &str) {
    tracing::info!("{step}");
    let _ = SINK.try_with(|tx| tx.send(step.to_string()));
}

/// The current operation's callback, as a handle that other threads can use.
#[derive(Debug, Clone)]
pub struct Listener(mpsc::UnboundedSender<String>);

impl Listener {
    /// The listener of the operation running in this task, if one listens
    /// (see [`forward`]).
    pub fn current() -> Option<Listener> {
        SINK.try_with(|tx| Listener(tx.clone())).ok()
    }

    /// Pass `step` to the operation's callback (not logged: the caller
    /// logs); false once the operation has ended.
    pub fn send(&self, step: &str) -> bool {
        self.0.send(step.to_string()).is_ok()
    }
}

/// Run `fut`, passing every [`report`] made inside it (in the same task) to
/// `progress`, in order, before returning its output.
pub async fn forward<F: Future>(progress: Progress<'_>, fut: F) -> F::Output {
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let fut = SINK.scope(tx, fut);
    tokio::pin!(fut);
    loop {
        tokio::select! {
            out = &mut fut => {
                while let Ok(step) = rx.try_recv() {
                    progress(&step);
                }
                return out;
            }
            Some(step) = rx.recv() => progress(&step),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[tokio::test]
    async fn reports_reach_the_callback_in_order() {
        let seen = Mutex::new(Vec::<String>::new());
        let cb = |s: &str| seen.lock().expect("lock").push(s.to_string());
        let out = forward(&cb, async {
            report("one");
            tokio::task::yield_now().await;
            report("two");
            report("three");
            7
        })
        .await;
        assert_eq!(out, 7);
        assert_eq!(*seen.lock().expect("lock"), ["one", "two", "three"]);
    }

    #[tokio::test]
    async fn a_listener_carries_steps_from_another_thread() {
        let seen = Mutex::new(Vec::<String>::new());
        let cb = |s: &str| seen.lock().expect("lock").push(s.to_string());
        let kept = forward(&cb, async {
            report("before");
            let l = Listener::current().expect("listening");
            let l2 = l.clone();
            std::thread::spawn(move || assert!(l2.send("from a thread")))
                .join()
                .expect("thread");
            report("after");
            l
        })
        .await;
        assert_eq!(
            *seen.lock().expect("lock"),
            ["before", "from a thread", "after"]
        );
        // the operation is over: nobody hears it any more
        assert!(!kept.send("late"));
        assert!(Listener::current().is_none());
    }

    #[tokio::test]
    async fn report_outside_an_operation_goes_nowhere() {
        report("nobody listens");
        let seen = Mutex::new(0);
        let cb = |_: &str| *seen.lock().expect("lock") += 1;
        forward(&cb, async {}).await;
        assert_eq!(*seen.lock().expect("lock"), 0);
    }
}
