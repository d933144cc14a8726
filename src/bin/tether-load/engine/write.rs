//! The write side: the shared scratch buffer to a connection's socket (a
//! connection keeps bytes only when the kernel would not take them), the
//! WRITABLE interest that follows what is left, and the polite close.

use super::*;

impl Engine {
    /// Writes the scratch buffer to `key` (after anything already queued).
    pub fn flush(&mut self, key: usize) {
        let Some(c) = self.conns.get_mut(key).filter(|c| c.phase != Phase::Dead) else {
            self.wbuf.clear();
            return;
        };
        if c.tls.is_some() {
            self.flush_tls(key);
            self.update_interest(key);
            return;
        }
        if !self.wbuf.is_empty() {
            c.last_tx_ns = self.now_ns;
            if c.out.is_empty() {
                match conn::write_some(&mut c.stream, &self.wbuf) {
                    Ok(n) => c.out.extend_from_slice(&self.wbuf[n..]),
                    Err(e) => {
                        log::debug!("write failed: {e}");
                        self.wbuf.clear();
                        self.fail(key, ErrorKind::Reset);
                        return;
                    }
                }
            } else {
                c.out.extend_from_slice(&self.wbuf);
            }
            self.wbuf.clear();
        } else if !c.out.is_empty() {
            match conn::write_some(&mut c.stream, &c.out) {
                Ok(n) => {
                    c.out.drain(..n);
                }
                Err(e) => {
                    log::debug!("write failed: {e}");
                    self.fail(key, ErrorKind::Reset);
                    return;
                }
            }
        }
        if c.out.is_empty() {
            // Free the backlog's memory: an idle connection holds no buffer.
            c.out = Vec::new();
            if c.fin_pending {
                c.fin_pending = false;
                if let Err(e) = shutdown_write(&c.stream) {
                    log::debug!("shutdown failed: {e}");
                }
            }
        }
        self.update_interest(key);
    }

    /// Registers WRITABLE interest exactly while `key` has bytes to write.
    fn update_interest(&mut self, key: usize) {
        let Some(c) = self.conns.get_mut(key).filter(|c| c.phase != Phase::Dead) else {
            return;
        };
        let wants = c.wants_write();
        if wants != c.write_interest {
            c.write_interest = wants;
            let token = token_of(key, c.generation);
            let interest = if wants {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if self
                .poll
                .registry()
                .reregister(&mut c.stream, token, interest)
                .is_err()
            {
                self.fail(key, ErrorKind::Reset);
            }
        }
    }

    /// GOAWAY NORMAL, FIN once it is flushed, then read to the server's EOF.
    pub fn close_politely(&mut self, key: usize) {
        self.wbuf
            .extend_from_slice(&encode_goaway(GoawayCode::Normal, "load done"));
        if let Some(c) = self.conns.get_mut(key) {
            c.fin_pending = true;
        }
        self.set_phase(key, Phase::Closing);
        self.flush(key);
    }
}
