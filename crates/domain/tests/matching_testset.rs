//! The labelled patient-matching test set: precision and recall.
//!
//! The set lives in `tests/data/matching/`: `hand.json` is written by hand, `generated.jsonl` by
//! the deterministic generator below (a fixed-seed PRNG; realistic typos, format variations,
//! changed details and distractors). `generated_set_is_up_to_date` fails if the committed file and
//! the generator disagree; regenerate with
//! `SLOTBRIDGE_REGENERATE=1 cargo test -p slotbridge-domain --test matching_testset`.
//!
//! Labels are ground truth from how each case was built (whose details the booking was made
//! from), never from what the matcher says.

use std::collections::BTreeMap;
use std::path::PathBuf;

use jiff::civil::{Date, date};
use serde::{Deserialize, Serialize};
use slotbridge_domain::matching::normalise::normalise_name;
use slotbridge_domain::matching::{
    BookingPatient, MatchConfig, Outcome, PmsPatient, Weights, match_patient,
};

/// What must come out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Expect {
    /// The booking is this patient's: it must be matched to this id.
    Match(String),
    /// The patient is not on file: new (ambiguous acceptable, a match is a wrong merge).
    New,
    /// The patient is on file more than once: ambiguous (new acceptable, a match is not).
    Ambiguous,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Case {
    name: String,
    tags: Vec<String>,
    booking: BookingPatient,
    candidates: Vec<PmsPatient>,
    expect: Expect,
}

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/matching")
}

fn load() -> Vec<Case> {
    let hand = std::fs::read_to_string(data_dir().join("hand.json")).expect("hand.json");
    let mut cases: Vec<Case> = serde_json::from_str(&hand).expect("hand.json parses");
    let generated =
        std::fs::read_to_string(data_dir().join("generated.jsonl")).expect("generated.jsonl");
    for (i, line) in generated.lines().enumerate() {
        let case: Case = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("generated.jsonl line {}: {e}", i + 1));
        cases.push(case);
    }
    cases
}

#[derive(Default, Debug)]
struct Tally {
    cases: usize,
    /// Expected a match and got exactly it.
    true_matches: usize,
    /// Any match that is not the expected one (a wrong merge).
    wrong_merges: usize,
    /// Expected a match and got new or ambiguous.
    missed: usize,
    expected_matches: usize,
    new_as_new: usize,
    new_as_ambiguous: usize,
    expected_new: usize,
    ambiguous_as_ambiguous: usize,
    expected_ambiguous: usize,
}

#[test]
fn precision_and_recall_on_the_labelled_set() {
    let cases = load();
    assert!(cases.len() >= 300, "only {} cases", cases.len());
    let (total, by_tag, failures) = evaluate(&cases, &MatchConfig::default());
    let (precision, recall) = total.precision_recall();
    eprintln!("patient matching on {} labelled cases:", total.cases);
    eprintln!(
        "  precision {precision:.3} ({} correct matches, {} wrong merges)",
        total.true_matches, total.wrong_merges
    );
    eprintln!(
        "  recall    {recall:.3} ({} of {} existing patients matched, {} missed)",
        total.true_matches, total.expected_matches, total.missed
    );
    eprintln!(
        "  new patients: {} of {} new, {} ambiguous (flagged)",
        total.new_as_new, total.expected_new, total.new_as_ambiguous
    );
    eprintln!(
        "  duplicate files: {} of {} ambiguous",
        total.ambiguous_as_ambiguous, total.expected_ambiguous
    );
    for (tag, (n, ok)) in &by_tag {
        eprintln!("  {tag:<22} {ok:>3}/{n:<3}");
    }
    for f in &failures {
        eprintln!("  not right: {f}");
    }
    assert_eq!(total.wrong_merges, 0, "a wrong merge is a privacy incident");
    assert!(precision >= 1.0, "precision {precision}");
    assert!(recall >= 0.95, "recall {recall:.3} below 0.95");
}

/// The weight study behind docs/matching.md: precision and recall for alternative settings.
/// Run with `cargo test -p slotbridge-domain --test matching_testset -- --ignored --nocapture`.
#[test]
#[ignore = "a study, not a check: prints a table"]
fn weight_study() {
    let cases = load();
    let base = MatchConfig::default();
    let w = base.weights;
    let marketplace = Weights {
        first_name_fuzzy: 30,
        first_initial: 30,
        last_name_fuzzy: 20,
        medicare_card: 90,
        address: 0,
        ..w
    };
    let variants: Vec<(&str, MatchConfig)> = vec![
        ("chosen (default)", base),
        (
            "marketplace weights as given, no typo discount",
            MatchConfig {
                weights: marketplace,
                ..base
            },
        ),
        (
            "threshold 80",
            MatchConfig {
                threshold: 80,
                ..base
            },
        ),
        (
            "threshold 90",
            MatchConfig {
                threshold: 90,
                ..base
            },
        ),
        (
            "threshold 110",
            MatchConfig {
                threshold: 110,
                ..base
            },
        ),
        (
            "threshold 120",
            MatchConfig {
                threshold: 120,
                ..base
            },
        ),
        (
            "threshold 150",
            MatchConfig {
                threshold: 150,
                ..base
            },
        ),
        (
            "no address weight",
            MatchConfig {
                weights: Weights { address: 0, ..w },
                ..base
            },
        ),
        (
            "address 20",
            MatchConfig {
                weights: Weights { address: 20, ..w },
                ..base
            },
        ),
        (
            "fuzzy first name 30",
            MatchConfig {
                weights: Weights {
                    first_name_fuzzy: 30,
                    ..w
                },
                ..base
            },
        ),
        (
            "dob 70",
            MatchConfig {
                weights: Weights { dob: 70, ..w },
                ..base
            },
        ),
        (
            "phone and email 50",
            MatchConfig {
                weights: Weights {
                    phone: 50,
                    email: 50,
                    ..w
                },
                ..base
            },
        ),
    ];
    eprintln!("| setting | precision | recall | wrong merges | missed | new flagged |");
    eprintln!("|---|---|---|---|---|---|");
    for (name, config) in variants {
        let (t, _, _) = evaluate(&cases, &config);
        let (p, r) = t.precision_recall();
        eprintln!(
            "| {name} | {p:.3} | {r:.3} | {} | {} | {} |",
            t.wrong_merges, t.missed, t.new_as_ambiguous
        );
    }
}

impl Tally {
    fn precision_recall(&self) -> (f64, f64) {
        let predicted = self.true_matches + self.wrong_merges;
        let precision = if predicted == 0 {
            1.0
        } else {
            self.true_matches as f64 / predicted as f64
        };
        let recall = self.true_matches as f64 / self.expected_matches.max(1) as f64;
        (precision, recall)
    }
}

type ByTag = BTreeMap<String, (usize, usize)>;

fn evaluate(cases: &[Case], config: &MatchConfig) -> (Tally, ByTag, Vec<String>) {
    let mut total = Tally::default();
    let mut by_tag: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut failures = Vec::new();
    for case in cases {
        let decision = match_patient(&case.booking, &case.candidates, config);
        total.cases += 1;
        let ok = match (&case.expect, &decision.outcome) {
            (Expect::Match(want), Outcome::Match { patient_id }) => {
                total.expected_matches += 1;
                if want == patient_id {
                    total.true_matches += 1;
                    true
                } else {
                    total.wrong_merges += 1;
                    false
                }
            }
            (Expect::Match(_), _) => {
                total.expected_matches += 1;
                total.missed += 1;
                false
            }
            (_, Outcome::Match { .. }) => {
                if case.expect == Expect::New {
                    total.expected_new += 1;
                } else {
                    total.expected_ambiguous += 1;
                }
                total.wrong_merges += 1;
                false
            }
            (Expect::New, Outcome::New) => {
                total.expected_new += 1;
                total.new_as_new += 1;
                true
            }
            (Expect::New, Outcome::Ambiguous { .. }) => {
                total.expected_new += 1;
                total.new_as_ambiguous += 1;
                true
            }
            (Expect::Ambiguous, Outcome::Ambiguous { .. }) => {
                total.expected_ambiguous += 1;
                total.ambiguous_as_ambiguous += 1;
                true
            }
            (Expect::Ambiguous, Outcome::New) => {
                total.expected_ambiguous += 1;
                true
            }
        };
        for tag in &case.tags {
            let e = by_tag.entry(tag.clone()).or_default();
            e.0 += 1;
            if ok {
                e.1 += 1;
            }
        }
        if !ok {
            failures.push(format!(
                "{}: expected {:?}, got {} {:?}; top: {}",
                case.name,
                case.expect,
                decision.kind(),
                decision.patient_id(),
                decision
                    .candidates
                    .first()
                    .map(|c| format!(
                        "{} {} {} {:?}",
                        c.patient_id, c.score, c.status, c.conflicts
                    ))
                    .unwrap_or_default()
            ));
        }
    }
    (total, by_tag, failures)
}

#[test]
fn generated_set_is_up_to_date() {
    let text = generate();
    let path = data_dir().join("generated.jsonl");
    if std::env::var_os("SLOTBRIDGE_REGENERATE").is_some() {
        std::fs::write(&path, &text).expect("write generated.jsonl");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == text,
        "generated.jsonl differs from the generator; regenerate with SLOTBRIDGE_REGENERATE=1"
    );
}

#[test]
fn labels_are_consistent() {
    for case in load() {
        let ids: Vec<&str> = case.candidates.iter().map(|c| c.id.as_str()).collect();
        if let Expect::Match(id) = &case.expect {
            assert!(
                ids.contains(&id.as_str()),
                "{}: {id} not a candidate",
                case.name
            );
        }
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(
            sorted.len(),
            ids.len(),
            "{}: duplicate candidate ids",
            case.name
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The generator.

/// SplitMix64: small, deterministic, good enough to pick test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }
}

const FIRST: &[&str] = &[
    "Olivia",
    "Charlotte",
    "Amelia",
    "Isla",
    "Mia",
    "Ava",
    "Grace",
    "Chloe",
    "Harper",
    "Zoe",
    "Sophie",
    "Matilda",
    "Ruby",
    "Evelyn",
    "Hannah",
    "Jessica",
    "Rebecca",
    "Catherine",
    "Elizabeth",
    "Margaret",
    "Susan",
    "Jennifer",
    "Michelle",
    "Deborah",
    "Patricia",
    "Siobhan",
    "Aroha",
    "Mei",
    "Priya",
    "Ngoc",
    "Renée",
    "Zoë",
    "Oliver",
    "Noah",
    "Jack",
    "William",
    "Leo",
    "Lucas",
    "Thomas",
    "Henry",
    "Charles",
    "James",
    "Ethan",
    "Samuel",
    "Benjamin",
    "Alexander",
    "Robert",
    "Michael",
    "Christopher",
    "Matthew",
    "Daniel",
    "Anthony",
    "Richard",
    "Stephen",
    "Peter",
    "Lachlan",
    "Hamish",
    "Tane",
    "Rahul",
    "Wei",
    "José",
    "Søren",
    "Siosaia",
    "Declan",
    "Callum",
];

const LAST: &[&str] = &[
    "Smith",
    "Jones",
    "Williams",
    "Brown",
    "Wilson",
    "Taylor",
    "Johnson",
    "White",
    "Martin",
    "Anderson",
    "Thompson",
    "Nguyen",
    "Tran",
    "Le",
    "Pham",
    "Thomas",
    "Walker",
    "Harris",
    "Lee",
    "Ryan",
    "Robinson",
    "Kelly",
    "King",
    "Davis",
    "Wright",
    "Evans",
    "Roberts",
    "Green",
    "Hall",
    "Wood",
    "Jackson",
    "Clarke",
    "O'Brien",
    "O'Connor",
    "MacDonald",
    "McKenzie",
    "Fitzgerald",
    "Papadopoulos",
    "Nikolaidis",
    "Rossi",
    "Bianchi",
    "Kowalski",
    "Singh",
    "Patel",
    "Kaur",
    "Chen",
    "Wang",
    "Zhang",
    "Li",
    "Liu",
    "Kim",
    "Park",
    "D'Souza",
    "Smith-Jones",
    "van der Berg",
    "Müller",
    "Núñez",
    "Hernández",
    "Tuilagi",
    "Ngata",
    "Campbell",
    "Stewart",
    "Murphy",
];

const STREETS: &[&str] = &[
    "Harbour",
    "George",
    "Pitt",
    "Victoria",
    "Elizabeth",
    "King",
    "Queen",
    "Bridge",
    "Church",
    "High",
    "Railway",
    "Station",
    "Park",
    "Ocean",
    "Beach",
    "Hill",
    "Wattle",
    "Banksia",
    "Jacaranda",
    "Gum Tree",
    "Kookaburra",
    "River",
    "Forest",
    "Mountain",
    "Lake",
];
const STREET_TYPES: &[(&str, &str)] = &[
    ("Street", "St"),
    ("Road", "Rd"),
    ("Avenue", "Ave"),
    ("Drive", "Dr"),
    ("Court", "Ct"),
    ("Crescent", "Cres"),
    ("Place", "Pl"),
    ("Parade", "Pde"),
];
const SUBURBS: &[(&str, &str, &str, &str)] = &[
    ("Pyrmont", "NSW", "2009", "02"),
    ("Newtown", "NSW", "2042", "02"),
    ("Parramatta", "NSW", "2150", "02"),
    ("Fitzroy", "VIC", "3065", "03"),
    ("Bendigo", "VIC", "3550", "03"),
    ("Geelong", "VIC", "3220", "03"),
    ("Fortitude Valley", "QLD", "4006", "07"),
    ("Toowoomba", "QLD", "4350", "07"),
    ("Fremantle", "WA", "6160", "08"),
    ("Glenelg", "SA", "5045", "08"),
    ("Sandy Bay", "TAS", "7005", "03"),
    ("Braddon", "ACT", "2612", "02"),
    ("Darwin City", "NT", "0800", "08"),
];
const DOMAINS: &[&str] = &[
    "gmail.com",
    "outlook.com",
    "bigpond.com",
    "icloud.com",
    "yahoo.com.au",
    "optusnet.com.au",
];

/// A person as the generator knows them: the truth.
#[derive(Clone, Debug)]
struct Person {
    first: String,
    last: String,
    dob: Date,
    mobile: String,
    home: Option<String>,
    email: Option<String>,
    street: String,
    suburb: (&'static str, &'static str, &'static str, &'static str),
    medicare: Option<(String, u8)>,
}

fn medicare_number(rng: &mut Rng) -> String {
    let mut d: Vec<u32> = vec![2 + rng.below(5) as u32];
    for _ in 0..7 {
        d.push(rng.below(10) as u32);
    }
    let check: u32 = d
        .iter()
        .zip([1, 3, 7, 9, 1, 3, 7, 9])
        .map(|(x, w)| x * w)
        .sum::<u32>()
        % 10;
    d.push(check);
    d.push(1 + rng.below(9) as u32);
    d.iter()
        .map(|x| char::from_digit(*x, 10).unwrap_or('0'))
        .collect()
}

fn email_for(rng: &mut Rng, first: &str, last: &str) -> String {
    let f = normalise_name(first).replace(' ', "");
    let l = normalise_name(last).replace(' ', "");
    let domain = rng.pick(DOMAINS);
    match rng.below(4) {
        0 => format!("{f}.{l}@{domain}"),
        1 => format!("{f}{l}{}@{domain}", rng.below(100)),
        2 => format!("{}{l}@{domain}", &f[..1]),
        _ => format!("{f}_{}@{domain}", rng.digits(3)),
    }
}

fn person(rng: &mut Rng) -> Person {
    let first = rng.pick(FIRST).to_string();
    let last = rng.pick(LAST).to_string();
    let year = 1935 + rng.below(88) as i16;
    let dob = date(year, 1 + rng.below(12) as i8, 1 + rng.below(28) as i8);
    let suburb = *rng.pick(SUBURBS);
    let (ty, _) = *rng.pick(STREET_TYPES);
    let street = if rng.chance(25) {
        format!(
            "{}/{} {} {ty}",
            1 + rng.below(20),
            1 + rng.below(200),
            rng.pick(STREETS)
        )
    } else {
        format!("{} {} {ty}", 1 + rng.below(200), rng.pick(STREETS))
    };
    Person {
        mobile: format!("04{}", rng.digits(8)),
        home: rng
            .chance(30)
            .then(|| format!("{}{}{}", suburb.3, 1 + rng.below(9), rng.digits(7))),
        email: rng.chance(85).then(|| email_for(rng, &first, &last)),
        medicare: rng
            .chance(40)
            .then(|| (medicare_number(rng), 1 + rng.below(5) as u8)),
        first,
        last,
        dob,
        street,
        suburb,
    }
}

/// The PMS file of a person: formats as a receptionist would have typed them.
fn file(rng: &mut Rng, id: String, p: &Person) -> PmsPatient {
    let mobile = if rng.chance(50) {
        format!("{} {} {}", &p.mobile[..4], &p.mobile[4..7], &p.mobile[7..])
    } else {
        p.mobile.clone()
    };
    PmsPatient {
        id,
        firstname: Some(p.first.clone()),
        lastname: Some(if rng.chance(15) {
            p.last.to_uppercase()
        } else {
            p.last.clone()
        }),
        dob: Some(p.dob),
        mobile: Some(mobile),
        phone: p
            .home
            .as_ref()
            .map(|h| format!("({}) {} {}", &h[..2], &h[2..6], &h[6..])),
        email: p.email.clone(),
        address: Some(format!(
            "{}, {} {} {}",
            p.street, p.suburb.0, p.suburb.1, p.suburb.2
        )),
        medicare: p.medicare.as_ref().map(|m| m.0.clone()),
        irn: p.medicare.as_ref().map(|m| m.1.to_string()),
    }
}

/// The booking a person makes on the marketplace, in its formats.
fn booking_of(p: &Person) -> BookingPatient {
    BookingPatient {
        firstname: Some(p.first.clone()),
        lastname: Some(p.last.clone()),
        dob: Some(p.dob.strftime("%d-%m-%Y").to_string()),
        phone: Some(p.mobile.clone()),
        email: p.email.clone(),
        address: Some(p.street.clone()),
        suburb: Some(p.suburb.0.to_string()),
        state: Some(p.suburb.1.to_string()),
        postcode: Some(p.suburb.2.to_string()),
        gender: None,
        medicare_number: p.medicare.as_ref().map(|m| m.0.clone()),
        medicare_irn: p.medicare.as_ref().map(|m| m.1.to_string()),
        medicare_expiry: p.medicare.as_ref().map(|_| "08/2028".to_string()),
    }
}

const KEYBOARD: &[&str] = &["qwertyuiop", "asdfghjkl", "zxcvbnm"];

fn neighbour(rng: &mut Rng, c: char) -> char {
    let lower = c.to_ascii_lowercase();
    for row in KEYBOARD {
        if let Some(i) = row.find(lower) {
            let bytes = row.as_bytes();
            let j = if i == 0 {
                1
            } else if i + 1 == bytes.len() || rng.chance(50) {
                i - 1
            } else {
                i + 1
            };
            return char::from(bytes[j]);
        }
    }
    c
}

/// One realistic typo: adjacent transposition, a dropped or doubled letter, or a neighbouring key.
fn typo(rng: &mut Rng, word: &str) -> String {
    let mut chars: Vec<char> = word.chars().collect();
    if chars.len() < 4 {
        return word.to_string();
    }
    // Keep the first letter: people rarely mistype it.
    let i = 1 + rng.below(chars.len() - 2);
    match rng.below(4) {
        0 => chars.swap(i, i + 1),
        1 => {
            chars.remove(i);
        }
        2 => chars.insert(i, chars[i]),
        _ => chars[i] = neighbour(rng, chars[i]),
    }
    chars.into_iter().collect()
}

/// A nickname the person might type for their first name, if the table has one.
fn nickname(rng: &mut Rng, first: &str) -> Option<String> {
    let key = normalise_name(first);
    let group = slotbridge_domain::matching::nicknames::NICKNAME_GROUPS
        .iter()
        .find(|g| g[0] == key)?;
    let nick = group[1 + rng.below(group.len() - 1)];
    let mut c = nick.chars();
    c.next()
        .map(|h| h.to_uppercase().chain(c).collect::<String>())
}

/// Another person sharing something with `p`: what a PMS search by dob, phone, email or name
/// brings back.
fn distractor(rng: &mut Rng, p: &Person) -> Person {
    let mut d = person(rng);
    // Never the same first name (nor a nickname of it) with the same dob: that would be p.
    while slotbridge_domain::matching::nicknames::same_given_name(
        &normalise_name(&d.first),
        &normalise_name(&p.first),
    ) {
        d.first = rng.pick(FIRST).to_string();
    }
    match rng.below(6) {
        0 => d.dob = p.dob, // found by date of birth
        5 => {
            // same first name and birthday, another family: found by date of birth
            d.first = p.first.clone();
            d.dob = p.dob;
            while normalise_name(&d.last) == normalise_name(&p.last) {
                d.last = rng.pick(LAST).to_string();
            }
        }
        4 => {
            // a household member, found by phone or email
            d.last = p.last.clone();
            d.mobile = p.mobile.clone();
            d.email = p.email.clone();
            d.street = p.street.clone();
            d.suburb = p.suburb;
        }
        1 => d.last = p.last.clone(), // found by name
        2 => {
            // a namesake, born another day
            d.first = p.first.clone();
            d.last = p.last.clone();
            while d.dob == p.dob {
                d.dob = date(1940 + rng.below(80) as i16, 1 + rng.below(12) as i8, 1);
            }
        }
        _ => {} // an unrelated result of a loose name search
    }
    d
}

struct Gen {
    rng: Rng,
    next_id: u32,
    cases: Vec<Case>,
}

impl Gen {
    fn id(&mut self) -> String {
        self.next_id += 1;
        format!("p-{:04}", self.next_id * 37 % 10_000)
    }

    fn file(&mut self, p: &Person) -> PmsPatient {
        let id = self.id();
        file(&mut self.rng, id, p)
    }

    /// Distractors for `p`, as a candidate list.
    fn around(&mut self, p: &Person, n: usize) -> Vec<PmsPatient> {
        (0..n)
            .map(|_| {
                let d = distractor(&mut self.rng, p);
                self.file(&d)
            })
            .collect()
    }

    fn push(
        &mut self,
        name: String,
        tags: &[&str],
        booking: BookingPatient,
        mut candidates: Vec<PmsPatient>,
        expect: Expect,
    ) {
        // Search results come back in no particular order.
        for i in (1..candidates.len()).rev() {
            let j = self.rng.below(i + 1);
            candidates.swap(i, j);
        }
        self.cases.push(Case {
            name,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            booking,
            candidates,
            expect,
        });
    }

    /// A case for someone on file: `change` alters the booking (and may alter the person).
    fn existing(
        &mut self,
        name: &str,
        tags: &[&str],
        count: usize,
        change: impl Fn(&mut Rng, &mut Person, &mut BookingPatient),
    ) {
        for i in 0..count {
            let mut p = person(&mut self.rng);
            let on_file = self.file(&p);
            let id = on_file.id.clone();
            let mut b = booking_of(&p);
            change(&mut self.rng, &mut p, &mut b);
            let n = 1 + self.rng.below(4);
            let mut candidates = self.around(&p, n);
            candidates.push(on_file);
            self.push(
                format!("{name}-{i}"),
                tags,
                b,
                candidates,
                Expect::Match(id),
            );
        }
    }
}

fn generate() -> String {
    let mut g = Gen {
        rng: Rng(0x5107_B41D_6E00_0008),
        next_id: 0,
        cases: Vec::new(),
    };

    g.existing("exact", &["existing"], 25, |_, _, _| {});
    g.existing("moved", &["changed-address"], 20, |rng, _, b| {
        let s = *rng.pick(SUBURBS);
        b.address = Some(format!(
            "{} {} Street",
            1 + rng.below(300),
            rng.pick(STREETS)
        ));
        b.suburb = Some(s.0.into());
        b.state = Some(s.1.into());
        b.postcode = Some(s.2.into());
    });
    g.existing("new-phone", &["changed-phone"], 20, |rng, _, b| {
        b.phone = Some(format!("04{}", rng.digits(8)));
    });
    g.existing("new-email", &["changed-email"], 20, |rng, p, b| {
        b.email = Some(format!(
            "{}{}@{}",
            normalise_name(&p.first).replace(' ', ""),
            rng.digits(4),
            rng.pick(DOMAINS)
        ));
    });
    g.existing("married", &["changed-last-name"], 25, |rng, _, b| {
        b.lastname = Some(rng.pick(LAST).to_string());
    });
    g.existing(
        "married-and-moved",
        &["changed-last-name", "changed-address"],
        10,
        |rng, _, b| {
            b.lastname = Some(rng.pick(LAST).to_string());
            b.address = Some(format!("{} {} Road", 1 + rng.below(300), rng.pick(STREETS)));
        },
    );
    g.existing("format", &["format"], 30, |rng, p, b| {
        let d = p.dob;
        b.dob = Some(match rng.below(6) {
            0 => d.strftime("%Y-%m-%d").to_string(),
            1 => d.strftime("%-d/%-m/%Y").to_string(),
            2 => d.strftime("%d.%m.%Y").to_string(),
            3 => d.strftime("%d %b %Y").to_string(),
            4 => d.strftime("%d/%m/%Y").to_string(),
            _ => d.strftime("%d-%m-%Y").to_string(),
        });
        let m = &p.mobile;
        b.phone = Some(match rng.below(5) {
            0 => format!("+61 {} {} {}", &m[1..4], &m[4..7], &m[7..]),
            1 => format!("+61 (0){}", &m[1..]),
            2 => format!("61{}", &m[1..]),
            3 => format!("{}-{}-{}", &m[..4], &m[4..7], &m[7..]),
            _ => format!("({}) {}", &m[..4], &m[4..]),
        });
        b.firstname = Some(match rng.below(3) {
            0 => format!("  {}", p.first.to_uppercase()),
            1 => p.first.to_lowercase(),
            _ => format!("{} ", p.first),
        });
        b.lastname = Some(match rng.below(3) {
            0 => p.last.to_uppercase(),
            1 => p.last.to_lowercase().replace(['\'', '-'], " "),
            _ => format!(" {}", p.last),
        });
        b.email = p.email.as_ref().map(|e| format!(" {} ", e.to_uppercase()));
    });
    g.existing("typo-first", &["misspelt"], 20, |rng, p, b| {
        b.firstname = Some(typo(rng, &p.first));
    });
    g.existing("typo-last", &["misspelt"], 20, |rng, p, b| {
        b.lastname = Some(typo(rng, &p.last));
    });
    g.existing("nickname", &["nickname"], 20, |rng, p, b| {
        if let Some(nick) = nickname(rng, &p.first) {
            b.firstname = Some(nick);
        } else {
            b.firstname = Some(p.first.to_uppercase());
        }
    });
    g.existing("swapped", &["swapped-names"], 15, |_, p, b| {
        b.firstname = Some(p.last.clone());
        b.lastname = Some(p.first.clone());
    });
    g.existing("no-email", &["missing-email"], 15, |_, _, b| {
        b.email = None;
    });
    g.existing(
        "international",
        &["international-phone"],
        15,
        |rng, p, b| {
            // Living abroad: the file and the booking carry the same foreign number, written
            // differently.
            let (cc, local) = *rng.pick(&[("44", "7700"), ("64", "21"), ("1", "415"), ("65", "9")]);
            let number = format!("{local}{}", rng.digits(7));
            p.mobile = format!("+{cc}{number}");
            b.phone = Some(if rng.chance(50) {
                format!("00{cc} {number}")
            } else {
                format!("+{cc} {} {}", &number[..3], &number[3..])
            });
        },
    );

    // Hard but fair: several details changed at once, or a mistyped date of birth. The truth is
    // still the file; the matcher may miss these, and the recall says how often.
    g.existing(
        "married-new-phone-new-email",
        &["hard", "changed-last-name"],
        5,
        |rng, p, b| {
            b.lastname = Some(rng.pick(LAST).to_string());
            b.phone = Some(format!("04{}", rng.digits(8)));
            b.email = Some(format!(
                "{}{}@{}",
                normalise_name(&p.first).replace(' ', ""),
                rng.digits(2),
                rng.pick(DOMAINS)
            ));
        },
    );
    g.existing(
        "typo-first-new-phone-no-email",
        &["hard", "misspelt"],
        5,
        |rng, p, b| {
            b.firstname = Some(typo(rng, &p.first));
            b.phone = Some(format!("04{}", rng.digits(8)));
            b.email = None;
        },
    );
    g.existing("dob-typo", &["hard", "dob-typo"], 5, |rng, p, b| {
        let d = p.dob;
        let wrong = if d.day() <= 12 && d.day() != d.month() {
            date(d.year(), d.day(), d.month())
        } else {
            date(d.year() + 1 - 2 * (rng.below(2) as i16), d.month(), d.day())
        };
        b.dob = Some(wrong.strftime("%d-%m-%Y").to_string());
    });

    // The international cases above changed the person after the file was made: rebuild them so
    // the file carries the foreign number too.
    for case in g
        .cases
        .iter_mut()
        .filter(|c| c.name.starts_with("international-"))
    {
        if let (Expect::Match(id), Some(phone)) = (&case.expect, &case.booking.phone) {
            let id = id.clone();
            let e164 = if let Some(rest) = phone.strip_prefix("00") {
                format!("+{}", rest.replace(' ', ""))
            } else {
                phone.replace(' ', "")
            };
            if let Some(f) = case.candidates.iter_mut().find(|c| c.id == id) {
                f.mobile = Some(e164);
            }
        }
    }

    // Twins: same surname, dob, phone, email and address; different first names.
    for i in 0..20 {
        let a = person(&mut g.rng);
        let mut b = a.clone();
        while slotbridge_domain::matching::nicknames::same_given_name(
            &normalise_name(&b.first),
            &normalise_name(&a.first),
        ) {
            b.first = g.rng.pick(FIRST).to_string();
        }
        let file_a = g.file(&a);
        let file_b = g.file(&b);
        let n = g.rng.below(3);
        let mut candidates = g.around(&a, n);
        if i % 2 == 0 {
            let id = file_a.id.clone();
            candidates.push(file_a);
            candidates.push(file_b);
            g.push(
                format!("twins-both-{i}"),
                &["twins"],
                booking_of(&a),
                candidates,
                Expect::Match(id),
            );
        } else {
            candidates.push(file_b);
            g.push(
                format!("twin-other-only-{i}"),
                &["twins", "new"],
                booking_of(&a),
                candidates,
                Expect::New,
            );
        }
    }

    // Parent and child sharing phone, email and address.
    for i in 0..20 {
        let parent = person(&mut g.rng);
        let mut child = person(&mut g.rng);
        child.last = parent.last.clone();
        child.mobile = parent.mobile.clone();
        child.email = parent.email.clone();
        child.street = parent.street.clone();
        child.suburb = parent.suburb;
        child.dob = date(
            2008 + g.rng.below(15) as i16,
            child.dob.month(),
            child.dob.day(),
        );
        if let Some((card, _)) = &parent.medicare {
            child.medicare = Some((card.clone(), 3 + g.rng.below(3) as u8));
        }
        while slotbridge_domain::matching::nicknames::same_given_name(
            &normalise_name(&child.first),
            &normalise_name(&parent.first),
        ) {
            child.first = g.rng.pick(FIRST).to_string();
        }
        let parent_file = g.file(&parent);
        let child_file = g.file(&child);
        match i % 3 {
            0 => {
                let id = child_file.id.clone();
                g.push(
                    format!("child-with-parent-{i}"),
                    &["parent-child"],
                    booking_of(&child),
                    vec![parent_file, child_file],
                    Expect::Match(id),
                );
            }
            1 => {
                let id = parent_file.id.clone();
                g.push(
                    format!("parent-with-child-{i}"),
                    &["parent-child"],
                    booking_of(&parent),
                    vec![parent_file, child_file],
                    Expect::Match(id),
                );
            }
            _ => g.push(
                format!("child-first-visit-{i}"),
                &["parent-child", "new"],
                booking_of(&child),
                vec![parent_file],
                Expect::New,
            ),
        }
    }

    // Same name, different date of birth: a namesake, not the patient.
    for i in 0..15 {
        let p = person(&mut g.rng);
        let mut namesake = person(&mut g.rng);
        namesake.first = p.first.clone();
        namesake.last = p.last.clone();
        while namesake.dob == p.dob {
            namesake.dob = date(1950, 1, 1 + g.rng.below(28) as i8);
        }
        let n = g.rng.below(3);
        let mut candidates = g.around(&p, n);
        candidates.push(g.file(&namesake));
        g.push(
            format!("namesake-{i}"),
            &["same-name-other-dob", "new"],
            booking_of(&p),
            candidates,
            Expect::New,
        );
    }

    // New patients among realistic search results.
    for i in 0..30 {
        let p = person(&mut g.rng);
        let n = 1 + g.rng.below(5);
        let candidates = g.around(&p, n);
        g.push(
            format!("new-{i}"),
            &["new"],
            booking_of(&p),
            candidates,
            Expect::New,
        );
    }

    // The patient on file twice (an earlier duplicate): never pick one silently.
    for i in 0..8 {
        let p = person(&mut g.rng);
        let f1 = g.file(&p);
        let f2 = g.file(&p);
        let n = g.rng.below(3);
        let mut candidates = g.around(&p, n);
        candidates.push(f1);
        candidates.push(f2);
        g.push(
            format!("duplicate-files-{i}"),
            &["duplicates"],
            booking_of(&p),
            candidates,
            Expect::Ambiguous,
        );
    }

    let mut out = String::new();
    for case in &g.cases {
        out.push_str(&serde_json::to_string(case).expect("serialise case"));
        out.push('\n');
    }
    out
}
