//! The practices a simulator holds. Generated practices are built on first use and, while
//! nobody has changed them, may be dropped again and rebuilt identically later: this is how one
//! process serves 10,000 practices in little memory.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::generate;
use crate::practice::Practice;

/// A shared practice.
pub type Shared = Arc<Mutex<Practice>>;

/// Where a practice is.
#[derive(Debug)]
pub enum Lookup {
    /// In memory.
    Live(Shared),
    /// Not in memory: build it with `generate::generated(seed, index, epoch)`.
    Generate {
        /// Generation seed.
        seed: u64,
        /// Practice index.
        index: u32,
        /// Diary start instant.
        epoch: jiff::Timestamp,
    },
    /// No such practice.
    Unknown,
}

/// The practices of one simulator.
#[derive(Debug)]
pub struct Registry {
    seed: u64,
    count: u32,
    epoch: jiff::Timestamp,
    live: HashMap<String, Shared>,
    clean: VecDeque<String>,
    cap: usize,
    /// The total weight of the generated practices in memory (see [`Practice::weight`]).
    weight: Arc<AtomicUsize>,
    budget: usize,
}

impl Registry {
    /// A registry of Harbour Dental and `count` generated practices, diaries from `epoch`'s date,
    /// keeping at most `cap` unchanged generated practices in memory, and dropping unchanged
    /// ones while the generated practices weigh more than `budget` (see [`Practice::weight`]).
    pub fn new(seed: u64, count: u32, epoch: jiff::Timestamp, cap: usize, budget: usize) -> Self {
        let mut live = HashMap::new();
        live.insert(
            generate::DEMO_SLUG.to_owned(),
            Arc::new(Mutex::new(generate::harbour_dental(seed, epoch))),
        );
        Self {
            seed,
            count,
            epoch,
            live,
            clean: VecDeque::new(),
            cap: cap.max(1),
            weight: Arc::new(AtomicUsize::new(0)),
            budget,
        }
    }

    /// The total weight of the generated practices in memory.
    pub fn weight(&self) -> usize {
        self.weight.load(Ordering::Relaxed)
    }

    /// Drop unchanged practices if reads built so much that the weight is over budget.
    pub fn trim(&mut self) {
        if self.weight() > self.budget {
            self.evict();
        }
    }

    /// The generation seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// How many practices are generated.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// How many practices are in memory now.
    pub fn resident(&self) -> usize {
        self.live.len()
    }

    /// The practice with `slug` if it is in memory, or how to build it.
    pub fn lookup(&self, slug: &str) -> Lookup {
        if let Some(p) = self.live.get(slug) {
            return Lookup::Live(p.clone());
        }
        match generate::index_of(self.seed, self.count, slug) {
            Some(index) => Lookup::Generate {
                seed: self.seed,
                index,
                epoch: self.epoch,
            },
            None => Lookup::Unknown,
        }
    }

    /// Keep a practice generated outside the lock; if another request got there first, theirs
    /// is kept and returned.
    pub fn adopt(&mut self, slug: &str, mut practice: Practice) -> Shared {
        if let Some(p) = self.live.get(slug) {
            return p.clone();
        }
        practice.attach_meter(self.weight.clone());
        let p = Arc::new(Mutex::new(practice));
        self.live.insert(slug.to_owned(), p.clone());
        self.clean.push_back(slug.to_owned());
        self.evict();
        p
    }

    /// Add a practice created at the desk. `false` if the slug is taken.
    pub fn insert(&mut self, slug: &str, practice: Practice) -> bool {
        if self.live.contains_key(slug) || generate::index_of(self.seed, self.count, slug).is_some()
        {
            return false;
        }
        self.live
            .insert(slug.to_owned(), Arc::new(Mutex::new(practice)));
        true
    }

    /// Add several practices created at the desk, all or none: `Err(slug)` names the first slug
    /// that is taken (or given twice), and then nothing is added.
    pub fn insert_all(&mut self, practices: Vec<(String, Practice)>) -> Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        for (slug, _) in &practices {
            let taken = self.live.contains_key(slug)
                || generate::index_of(self.seed, self.count, slug).is_some();
            if taken || !seen.insert(slug.as_str()) {
                return Err(slug.clone());
            }
        }
        for (slug, practice) in practices {
            self.live.insert(slug, Arc::new(Mutex::new(practice)));
        }
        Ok(())
    }

    /// Drop unchanged generated practices nobody is using, oldest first, down to the cap and
    /// the weight budget.
    fn evict(&mut self) {
        let mut kept = VecDeque::new();
        while self.clean.len() + kept.len() > self.cap
            || (self.weight() > self.budget && !self.clean.is_empty())
        {
            let Some(slug) = self.clean.pop_front() else {
                break;
            };
            let Some(p) = self.live.get(&slug) else {
                continue;
            };
            // Only the registry holds it, and none can take it while we hold the registry.
            let idle = Arc::strong_count(p) == 1;
            let dirty = p.lock().map(|g| g.dirty).unwrap_or(true);
            if dirty {
                continue; // changed: stays in memory for good, no longer a candidate
            }
            if idle {
                self.live.remove(&slug);
            } else {
                kept.push_back(slug);
            }
        }
        while let Some(s) = kept.pop_back() {
            self.clean.push_front(s);
        }
    }
}
