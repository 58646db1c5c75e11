//! What the host plays to a caller who is not talking to an agent: prompts in
//! order, then music on hold (looped) if the call waits in a queue.

use std::collections::VecDeque;
use std::sync::Arc;

use super::prompts::Prompt;
use super::recorder::FRAME;

#[derive(Default)]
pub struct Player {
    prompts: VecDeque<(Arc<Prompt>, usize)>,
    music: Option<(Arc<Prompt>, usize)>,
}

impl Player {
    /// Play after whatever prompts are queued.
    pub fn queue(&mut self, prompt: Arc<Prompt>) {
        self.prompts.push_back((prompt, 0));
    }

    /// Stop the prompts (a digit barged in, or a new step began).
    pub fn stop_prompts(&mut self) {
        self.prompts.clear();
    }

    /// Loop this between prompts (None: silence).
    pub fn set_music(&mut self, music: Option<Arc<Prompt>>) {
        self.music = music.map(|m| (m, 0));
    }

    pub fn clear(&mut self) {
        self.prompts.clear();
        self.music = None;
    }

    /// Something to play: prompts, or music between them.
    pub fn active(&self) -> bool {
        !self.prompts.is_empty() || self.music.is_some()
    }

    /// A prompt is still playing.
    pub fn prompting(&self) -> bool {
        !self.prompts.is_empty()
    }

    /// The next 20 ms into `out`; false when there is nothing to play.
    pub fn next_frame(&mut self, out: &mut [i16; FRAME]) -> bool {
        let mut filled = 0;
        while filled < FRAME {
            let Some((prompt, pos)) = self.prompts.front_mut() else {
                break;
            };
            let n = (prompt.samples.len() - *pos).min(FRAME - filled);
            out[filled..filled + n].copy_from_slice(&prompt.samples[*pos..*pos + n]);
            filled += n;
            *pos += n;
            if *pos >= prompt.samples.len() {
                self.prompts.pop_front();
            }
        }
        if filled == 0
            && let Some((music, pos)) = &mut self.music
            && !music.samples.is_empty()
        {
            while filled < FRAME {
                let n = (music.samples.len() - *pos).min(FRAME - filled);
                out[filled..filled + n].copy_from_slice(&music.samples[*pos..*pos + n]);
                filled += n;
                *pos = (*pos + n) % music.samples.len();
            }
        }
        if filled == 0 {
            return false;
        }
        out[filled..].fill(0);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompt(name: &str, len: usize, v: i16) -> Arc<Prompt> {
        Arc::new(Prompt {
            name: name.into(),
            samples: vec![v; len],
        })
    }

    #[test]
    fn prompts_play_in_order_then_music_loops() {
        let mut p = Player::default();
        let mut f = [0i16; FRAME];
        assert!(!p.next_frame(&mut f));
        p.queue(prompt("a", 200, 1));
        p.queue(prompt("b", 100, 2));
        p.set_music(Some(prompt("m", 50, 3)));
        assert!(p.next_frame(&mut f));
        assert!(f.iter().all(|&s| s == 1));
        assert!(p.next_frame(&mut f));
        assert_eq!((f[0], f[39], f[40], f[139], f[140]), (1, 1, 2, 2, 0));
        assert!(!p.prompting());
        assert!(p.next_frame(&mut f));
        assert!(f.iter().all(|&s| s == 3), "music loops over a frame");
        p.clear();
        assert!(!p.next_frame(&mut f));
    }
}
