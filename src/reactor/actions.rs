//! The one place where the reactor calls the app and carries out what it
//! asked for: every [`Action`] of the outbox, in order, right after the call.

use super::{Reactor, TimerKind};
use crate::app::{Action, App, Ctx};
use crate::time::Span;

impl<A: App> Reactor<A> {
    /// Calls the app with a [`Ctx`] over this reactor's outbox and
    /// connection table, then carries out the actions it queued.
    pub(super) fn call_app<R>(&mut self, f: impl FnOnce(&mut A, &mut Ctx<'_>) -> R) -> R {
        let now = self.core.now;
        let result = f(
            &mut self.app,
            &mut Ctx::new(&mut self.outbox, &self.core, now),
        );
        self.carry_out();
        result
    }

    /// Applies the outbox to the connections and the wheel. Sends to a
    /// connection that is gone or not open are dropped by the connection.
    fn carry_out(&mut self) {
        let mut link_actions = std::mem::take(&mut self.link_actions);
        for action in self.outbox.drain() {
            match action {
                Action::Accept(id, grant) => {
                    let Some((e, limits, now)) = self.core.parts(id) else {
                        continue;
                    };
                    if e.conn
                        .accept(grant.session, grant.resumed, grant.lost, now, limits)
                    {
                        log::debug!(
                            "{id} open, heartbeat {} ms, session {}",
                            e.conn.heartbeat_ms(),
                            grant.session
                        );
                    }
                    self.core.mark_dirty(id);
                }
                Action::Send(id, frames) => {
                    let Some((e, limits, now)) = self.core.parts(id) else {
                        continue;
                    };
                    e.conn.send_frames(frames, now, limits);
                    self.core.mark_dirty(id);
                }
                Action::Close(id, code, reason) => self.core.close(id, code, &reason),
                Action::SetTimer { key, after_ms } => {
                    let at = Span::from_ms(after_ms, self.core.config.tick_ms)
                        .deadline_from(self.core.now);
                    let timer = self.wheel.insert(at, TimerKind::App(key));
                    if let Some(old) = self.app_timers.insert(key, timer) {
                        self.wheel.cancel(old);
                    }
                }
                Action::RaiseOutputLimits(id, bytes) => {
                    if let Some(e) = self.core.entry_mut(id) {
                        e.conn.raise_output_limits(bytes);
                    }
                }
                // After the drain: a link's actions may call the app again
                // (a failed dial is a Closed event).
                link @ (Action::Dial { .. } | Action::Transmit { .. } | Action::Hangup { .. }) => {
                    link_actions.push(link)
                }
                Action::CancelTimer { key } => {
                    if let Some(old) = self.app_timers.remove(&key) {
                        self.wheel.cancel(old);
                    }
                }
            }
        }
        for action in link_actions.drain(..) {
            match action {
                Action::Dial { link, addr } => self.dial(link, addr),
                Action::Transmit { link, bytes } => self.transmit(link, bytes),
                Action::Hangup { link } => self.hangup(link),
                _ => {}
            }
        }
        self.link_actions = link_actions;
    }
}
