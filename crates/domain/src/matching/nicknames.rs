//! A curated table of common English given names and their nicknames, and a list of other common
//! given names.
//!
//! Two uses:
//! - [`same_given_name`]: Bob and Robert, Liz and Elizabeth are the same first name.
//! - [`is_known_given_name`]: a typo tolerance must not turn one real name into another. Emma and
//!   Ella are one edit apart, but both are names: twins called Emma and Ella are two people. So a
//!   fuzzy first-name match is only accepted when at least one side is not a known name.
//!
//! Groups are not transitive: Alex belongs to both Alexander and Alexandra, but Alexander and
//! Alexandra are different names.

/// Each group: the formal name first, then its common nicknames and short forms. All lower case,
/// already normalised (see [`normalise_name`](super::normalise::normalise_name)).
pub const NICKNAME_GROUPS: &[&[&str]] = &[
    &["abigail", "abby", "abbie", "abi", "gail"],
    &["abraham", "abe", "bram"],
    &["adrian", "ade"],
    &["albert", "al", "bert", "bertie"],
    &[
        "alexander",
        "alex",
        "alec",
        "alexa",
        "sandy",
        "xander",
        "lex",
        "alek",
    ],
    &[
        "alexandra",
        "alex",
        "alexa",
        "lexi",
        "lexie",
        "sandy",
        "sasha",
        "ali",
    ],
    &["alfred", "alf", "alfie", "fred", "freddie"],
    &["alice", "ally", "allie", "ali"],
    &["alison", "allison", "ali", "ally", "allie"],
    &["amanda", "mandy", "manda"],
    &["andrew", "andy", "drew", "andie"],
    &["angela", "angie", "ange"],
    &["anne", "ann", "annie", "nan"],
    &["anthony", "tony", "ant", "anton"],
    &["antonia", "toni", "tonia"],
    &["arthur", "art", "artie"],
    &["barbara", "barb", "barbie", "babs"],
    &["benjamin", "ben", "benji", "benny", "benjy"],
    &["bernard", "bernie", "bern"],
    &["beverley", "beverly", "bev"],
    &["bradley", "brad"],
    &["brian", "bryan", "bri"],
    &["bridget", "bridgette", "bridie", "biddy"],
    &["callum", "cal"],
    &["cameron", "cam"],
    &["caroline", "carolyn", "carol", "carrie", "caz", "lyn"],
    &[
        "catherine",
        "katherine",
        "kathryn",
        "catharine",
        "cathy",
        "kathy",
        "cath",
        "kath",
        "kate",
        "katie",
        "kit",
        "kitty",
        "cate",
        "kat",
        "katy",
        "kay",
    ],
    &["charles", "charlie", "chas", "chuck", "chaz"],
    &["charlotte", "charlie", "lottie", "lotte", "char"],
    &["christian", "chris", "christy"],
    &[
        "christine",
        "christina",
        "chris",
        "chrissy",
        "tina",
        "christie",
        "kristy",
        "kristine",
        "kristina",
    ],
    &["christopher", "chris", "kit", "topher", "chrissy"],
    &["cynthia", "cindy"],
    &["daniel", "dan", "danny"],
    &["danielle", "dani", "elle"],
    &["david", "dave", "davey", "davy", "dai"],
    &["deborah", "debra", "debbie", "deb", "debby"],
    &["dennis", "denis", "den", "denny"],
    &["dominic", "dominick", "dom"],
    &["donald", "don", "donnie", "donny"],
    &["dorothy", "dot", "dottie", "dolly", "dora"],
    &["douglas", "doug", "dougie"],
    &["edward", "ed", "eddie", "eddy", "ted", "teddy", "ned"],
    &[
        "eleanor", "elinor", "ellie", "elle", "nell", "nellie", "nora",
    ],
    &[
        "elizabeth",
        "elisabeth",
        "liz",
        "lizzie",
        "lizzy",
        "beth",
        "betty",
        "bettie",
        "bess",
        "bessie",
        "eliza",
        "libby",
        "liza",
        "elsie",
        "ellie",
        "betsy",
        "lisbeth",
    ],
    &["emily", "em", "emmy", "millie"],
    &["emma", "em", "emmy"],
    &["eugene", "gene"],
    &["evelyn", "evie", "eve", "lyn"],
    &["frances", "fran", "frankie", "fanny"],
    &["francis", "frank", "frankie", "fran"],
    &["frederick", "frederic", "fred", "freddie", "freddy"],
    &["gabriel", "gabe", "gabby"],
    &["gabrielle", "gabriella", "gabby", "gabi"],
    &["geoffrey", "jeffrey", "jeffery", "geoff", "jeff"],
    &["gerald", "gerry", "jerry", "ged"],
    &["gregory", "greg", "gregg"],
    &["gwendolyn", "gwen", "wendy"],
    &["harold", "harry", "hal"],
    &["harriet", "hattie", "hatty", "harry"],
    &["helen", "helena", "nell", "nellie"],
    &["henry", "harry", "hank", "hal", "hen"],
    &[
        "isabella", "isabelle", "isabel", "izzy", "izzie", "bella", "belle", "issy", "isa",
    ],
    &["jacob", "jake", "jakey", "coby"],
    &["jacqueline", "jackie", "jacqui", "jacky"],
    &["james", "jim", "jimmy", "jamie", "jimbo", "jem"],
    &["jane", "janey", "jenny", "jan"],
    &["janet", "jan", "jenny", "netty"],
    &["jennifer", "jenny", "jen", "jenn", "jenni", "jennie"],
    &["jeremy", "jerry", "jez"],
    &["jessica", "jess", "jessie", "jessi"],
    &["joanne", "joanna", "joan", "jo", "joey", "jojo"],
    &["john", "jon", "johnny", "jonny", "jack", "jock"],
    &["jonathan", "jonathon", "jon", "jonny", "johnny"],
    &["joseph", "joe", "joey", "jo", "jos"],
    &["josephine", "jo", "josie", "jozy", "pheny"],
    &["joshua", "josh"],
    &["judith", "judy", "jude"],
    &["julia", "jules", "julie"],
    &["julian", "jules"],
    &["katrina", "trina", "kat", "katie"],
    &["kenneth", "ken", "kenny"],
    &["kimberley", "kimberly", "kim", "kimmy"],
    &["lawrence", "laurence", "larry", "laurie", "lawrie", "lol"],
    &["leonard", "len", "lenny", "leo"],
    &["lucy", "lu", "lucie"],
    &[
        "madeleine",
        "madeline",
        "madelyn",
        "maddie",
        "maddy",
        "madi",
        "maddi",
    ],
    &[
        "margaret", "maggie", "meg", "peggy", "marge", "margie", "madge", "molly", "mags", "peg",
    ],
    &["martha", "marty", "mattie", "patty"],
    &["martin", "marty", "mart"],
    &["mary", "mae", "mamie", "molly", "polly", "mimi"],
    &["matilda", "tilly", "tillie", "mattie", "tilda"],
    &["matthew", "matt", "matty"],
    &["melissa", "mel", "missy", "lissa"],
    &["melanie", "mel"],
    &[
        "michael", "mike", "mick", "mickey", "mikey", "micky", "mich",
    ],
    &["michelle", "shelly", "shelley", "chelle", "mish"],
    &["miriam", "mimi", "mitzi"],
    &["nathaniel", "nathan", "nate", "nat"],
    &["nicholas", "nick", "nicky", "nico", "nic", "claus"],
    &["nicole", "nikki", "nicky", "nic", "nicki"],
    &["oliver", "ollie", "olly"],
    &["olivia", "liv", "livvy", "livia"],
    &["pamela", "pam", "pammy"],
    &[
        "patricia", "pat", "patty", "patsy", "trish", "tricia", "trisha",
    ],
    &["patrick", "pat", "paddy"],
    &["peter", "pete", "petey"],
    &["philip", "phillip", "phil", "pip"],
    &["rachel", "rach", "rae"],
    &["raymond", "ray"],
    &["rebecca", "becky", "becca", "bec", "beck", "reba"],
    &["richard", "rick", "ricky", "rich", "richie", "dick", "rico"],
    &[
        "robert", "rob", "bob", "bobby", "robbie", "robby", "bert", "bertie",
    ],
    &["roberta", "bobbie", "robbie", "bertie"],
    &["ronald", "ron", "ronnie", "ronny"],
    &["rosemary", "rose", "rosie", "romy"],
    &["samantha", "sam", "sammy", "sammie"],
    &["samuel", "sam", "sammy", "sammie"],
    &["sarah", "sara", "sally", "sadie", "sal"],
    &["sebastian", "seb", "bastian", "sebby"],
    &["sharon", "shaz", "shari"],
    &["stephanie", "steph", "stevie", "steffi"],
    &["stephen", "steven", "steve", "stevie", "steph"],
    &["stuart", "stewart", "stu"],
    &[
        "susan", "suzanne", "susanne", "sue", "susie", "suzie", "suzy", "sukie",
    ],
    &["terence", "terrence", "terry", "tel"],
    &["theodore", "theo", "ted", "teddy"],
    &["thomas", "tom", "tommy", "thom"],
    &["timothy", "tim", "timmy"],
    &["valerie", "val"],
    &["vanessa", "nessa", "ness", "van"],
    &["veronica", "ronnie", "roni"],
    &[
        "victoria", "vicky", "vicki", "vickie", "tori", "tory", "vic",
    ],
    &["vincent", "vince", "vinnie", "vin"],
    &["walter", "walt", "wally"],
    &[
        "william", "will", "bill", "billy", "willy", "willie", "liam", "wil",
    ],
    &["zachary", "zach", "zack", "zac", "zak"],
];

/// Other common given names in Australia with no nickname in the table above, used only to tell a
/// typo from a different real name.
pub const OTHER_GIVEN_NAMES: &[&str] = &[
    "aaron", "adam", "aiden", "aisha", "alan", "allan", "amelia", "amy", "ari", "ariana", "ava",
    "bailey", "beau", "blake", "brooke", "bruce", "caleb", "carl", "carla", "chloe", "claire",
    "clara", "colin", "connor", "craig", "darren", "dean", "declan", "diana", "dylan", "eli",
    "elijah", "ellen", "eloise", "eric", "erin", "ethan", "eva", "ewan", "finn", "fiona", "flynn",
    "freya", "georgia", "george", "grace", "graham", "grant", "hamish", "hannah", "harper",
    "harrison", "hayden", "heidi", "holly", "hudson", "hugo", "hunter", "ian", "imogen", "isaac",
    "isla", "ivy", "jack", "jade", "jai", "jason", "jasmine", "jayden", "jean", "joel", "jordan",
    "karen", "kayla", "keith", "kevin", "kyle", "lachlan", "laura", "lauren", "layla", "leah",
    "levi", "lewis", "lily", "lilly", "linda", "logan", "louis", "louise", "lola", "lucas", "luna",
    "lydia", "mason", "max", "maya", "mia", "mila", "mark", "marcus", "mitchell", "morgan",
    "naomi", "neil", "niamh", "noah", "norman", "paige", "paul", "paula", "penelope", "phoebe",
    "piper", "poppy", "quinn", "riley", "rhys", "ruby", "russell", "ryan", "sadie", "scarlett",
    "scott", "sean", "shane", "shaun", "sienna", "simon", "sofia", "sophia", "sophie", "stella",
    "tahlia", "tara", "taylor", "tessa", "tristan", "troy", "tyler", "violet", "wayne", "willow",
    "wyatt", "xavier", "yvonne", "zara", "zoe", "zoey", "ali", "anh", "ahmed", "mohammed",
    "muhammad", "omar", "priya", "raj", "wei", "mei", "li", "jun", "minh", "linh", "hui", "yan",
    "ella", "ellie", "elle", "emma", "emmy", "evie", "eve", "mary", "marie", "mara", "maria",
];

/// Whether two normalised given names are the same name: equal, or in one nickname group.
///
/// ```
/// use slotbridge_domain::matching::nicknames::same_given_name;
/// assert!(same_given_name("bob", "robert"));
/// assert!(same_given_name("liz", "elizabeth"));
/// assert!(same_given_name("alex", "alexandra"));
/// assert!(!same_given_name("alexander", "alexandra"));
/// assert!(!same_given_name("emma", "ella"));
/// ```
pub fn same_given_name(a: &str, b: &str) -> bool {
    a == b
        || NICKNAME_GROUPS
            .iter()
            .any(|group| group.contains(&a) && group.contains(&b))
}

/// Whether a normalised given name is a known real name (in either table).
///
/// ```
/// use slotbridge_domain::matching::nicknames::is_known_given_name;
/// assert!(is_known_given_name("emma"));
/// assert!(is_known_given_name("bob"));
/// assert!(!is_known_given_name("emam"));
/// ```
pub fn is_known_given_name(name: &str) -> bool {
    OTHER_GIVEN_NAMES.contains(&name) || NICKNAME_GROUPS.iter().any(|g| g.contains(&name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matching::normalise::normalise_name;

    #[test]
    fn table_is_normalised_and_large() {
        let entries: usize = NICKNAME_GROUPS.iter().map(|g| g.len()).sum();
        assert!(
            NICKNAME_GROUPS.len() >= 100,
            "{} groups",
            NICKNAME_GROUPS.len()
        );
        assert!(entries >= 400, "{entries} entries");
        for name in NICKNAME_GROUPS
            .iter()
            .flat_map(|g| g.iter())
            .chain(OTHER_GIVEN_NAMES)
        {
            assert_eq!(
                &normalise_name(name),
                name,
                "table entries must be normalised"
            );
        }
    }
}
