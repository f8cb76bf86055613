//! Embedded name, street and language lists (most common first; picks are skewed to the front).
//!
//! Given names: common US names across birth cohorts (SSA popular-names lists) plus names common
//! in the Midwest's Hispanic, Somali, Hmong, Arab-American and Polish communities. Surnames: the
//! most frequent US Census 2010 surnames plus Scandinavian, German, Polish, Hmong, Somali and
//! Arabic names typical of the region. All combinations are synthetic.

/// Female given names.
pub const FEMALE: &[&str] = &[
    "Mary", "Jennifer", "Linda", "Patricia", "Elizabeth", "Susan", "Jessica", "Sarah", "Karen",
    "Lisa", "Nancy", "Betty", "Sandra", "Margaret", "Ashley", "Kimberly", "Emily", "Donna",
    "Michelle", "Carol", "Amanda", "Melissa", "Deborah", "Stephanie", "Dorothy", "Rebecca",
    "Sharon", "Laura", "Cynthia", "Amy", "Kathleen", "Angela", "Shirley", "Brenda", "Emma",
    "Anna", "Pamela", "Nicole", "Samantha", "Katherine", "Christine", "Helen", "Debra", "Rachel",
    "Carolyn", "Janet", "Maria", "Catherine", "Heather", "Diane", "Olivia", "Julie", "Joyce",
    "Victoria", "Ruth", "Virginia", "Lauren", "Kelly", "Christina", "Joan", "Evelyn", "Judith",
    "Andrea", "Hannah", "Megan", "Cheryl", "Jacqueline", "Martha", "Madison", "Teresa", "Gloria",
    "Sara", "Janice", "Ann", "Kathryn", "Abigail", "Sophia", "Frances", "Jean", "Alice", "Judy",
    "Isabella", "Julia", "Grace", "Amber", "Denise", "Danielle", "Marilyn", "Beverly",
    "Charlotte", "Natalie", "Theresa", "Diana", "Brittany", "Doris", "Kayla", "Alexis", "Lori",
    "Marie", "Ava", "Mia", "Harper", "Guadalupe", "Ximena", "Lucia", "Camila", "Valentina",
    "Sofia", "Fatima", "Amina", "Hodan", "Fartun", "Mai", "Pa", "Nou", "Kia", "Layla", "Noor",
    "Zainab", "Agnieszka", "Katarzyna", "Małgorzata", "Ingrid", "Maja", "Astrid", "Siobhan",
    "Chloé", "Zoë",
];

/// Male given names.
pub const MALE: &[&str] = &[
    "James", "Robert", "John", "Michael", "David", "William", "Richard", "Joseph", "Thomas",
    "Christopher", "Charles", "Daniel", "Matthew", "Anthony", "Mark", "Donald", "Steven", "Paul",
    "Andrew", "Joshua", "Kenneth", "Kevin", "Brian", "George", "Timothy", "Ronald", "Edward",
    "Jason", "Jeffrey", "Ryan", "Jacob", "Gary", "Nicholas", "Eric", "Jonathan", "Stephen",
    "Larry", "Justin", "Scott", "Brandon", "Benjamin", "Samuel", "Gregory", "Alexander", "Frank",
    "Patrick", "Raymond", "Jack", "Dennis", "Jerry", "Tyler", "Aaron", "Jose", "Adam", "Nathan",
    "Henry", "Douglas", "Zachary", "Peter", "Kyle", "Ethan", "Walter", "Noah", "Jeremy",
    "Christian", "Keith", "Roger", "Terry", "Gerald", "Harold", "Sean", "Austin", "Carl", "Arthur",
    "Lawrence", "Dylan", "Jesse", "Jordan", "Bryan", "Billy", "Joe", "Bruce", "Gabriel", "Logan",
    "Albert", "Willie", "Alan", "Juan", "Wayne", "Elijah", "Randy", "Roy", "Vincent", "Ralph",
    "Eugene", "Russell", "Bobby", "Mason", "Philip", "Louis", "Liam", "Oliver", "Lucas",
    "Santiago", "Mateo", "Luis", "Carlos", "Miguel", "Jesús", "Mohamed", "Abdi", "Ahmed", "Hassan",
    "Omar", "Ali", "Yusuf", "Tou", "Xeng", "Chue", "Kou", "Piotr", "Krzysztof", "Tomasz", "Lars",
    "Nils", "Sven", "Seamus", "Darnell", "DeShawn", "Malik", "Andre", "Jamal", "Terrence",
];

/// Surnames.
pub const SURNAMES: &[&str] = &[
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor",
    "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez",
    "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright", "Scott",
    "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall", "Rivera",
    "Campbell", "Mitchell", "Carter", "Roberts", "Olson", "Peterson", "Larson", "Swanson",
    "Hanson", "Carlson", "Johansson", "Lindqvist", "Nilsson", "Berg", "Schmidt", "Mueller",
    "Schneider", "Fischer", "Weber", "Wagner", "Becker", "Hoffmann", "Schultz", "Koch", "Kowalski",
    "Nowak", "Wiśniewski", "Wójcik", "Kowalczyk", "Kaminski", "Lewandowski", "Zielinski",
    "Szymanski", "Murphy", "O'Brien", "O'Connor", "Sullivan", "Kelly", "McCarthy", "Byrne",
    "Ryan", "Walsh", "Vang", "Xiong", "Yang", "Thao", "Moua", "Her", "Lor", "Vue", "Mohamed",
    "Ali", "Hassan", "Abdi", "Warsame", "Farah", "Osman", "Haddad", "Khoury", "Saleh", "Haddad-Smith",
    "Nasser", "Washington", "Jefferson", "Brooks", "Coleman", "Simmons", "Bryant", "Gray",
    "Reed", "Cook", "Morgan", "Bell", "Murphy-Jones", "Bailey", "Cooper", "Richardson", "Cox",
    "Howard", "Ward", "Peterson-Lee", "Watson", "Price", "Bennett", "Wood", "Barnes", "Ross",
    "Henderson", "Jenkins", "Perry", "Powell", "Long", "Patterson", "Hughes", "Butler", "Foster",
    "Gonzales", "Diaz", "Reyes", "Cruz", "Morales", "Ortiz", "Gutierrez", "Chavez", "Ramos",
    "Ruiz", "Mendoza", "Alvarez", "Castillo", "Jimenez", "Vasquez", "Romero", "Herrera", "Medina",
    "Aguilar", "Vargas", "Kim", "Park", "Chen", "Wang", "Li", "Zhang", "Liu", "Patel", "Shah",
    "Singh", "Tran", "Pham", "Le", "DuBois", "Lefebvre", "Van Dyke", "VanderMeer", "De Jong",
    "Schroeder", "Hansen", "Jensen", "Christensen", "Sorensen", "Novak", "Horvath", "Kovacs",
    "Stewart", "Morris", "Rogers", "Sanders", "Myers", "Ford", "Hamilton", "Graham", "Sullivan-Ortiz",
    "Wallace", "Woods", "Cole", "West", "Jordan", "Owens", "Reynolds", "Fisher", "Ellis",
    "Harrison", "Gibson", "McDonald", "Marshall", "Stone",
];

/// Street names.
pub const STREETS: &[&str] = &[
    "Main", "Oak", "Maple", "Elm", "Park", "Washington", "Lake", "Cedar", "Pine", "Walnut",
    "Hill", "Lincoln", "Jefferson", "Church", "Madison", "Prairie", "River", "Grand", "Division",
    "Chestnut", "Spruce", "Sunset", "Highland", "Center", "Union", "Franklin", "Adams", "Jackson",
    "Michigan", "Wisconsin", "Lakeshore", "Ridge", "Forest", "Mill", "Market", "Front", "Water",
    "Broadway", "Summit", "Garfield", "Monroe", "Cherry", "Birch", "Willow", "Hickory", "Locust",
    "Harrison", "University", "College", "Dearborn", "Halsted", "Kinzie", "Kedzie", "Cicero",
    "Woodward", "Gratiot", "High", "Euclid", "Hennepin", "Nicollet", "Lyndale", "Ingersoll",
    "Fleur", "Meridian", "Keystone", "Capitol", "Wells", "State", "King", "Martin Luther King Jr",
];

/// Street suffixes.
pub const SUFFIXES: &[&str] = &["St", "Ave", "Rd", "Dr", "Blvd", "Ln", "Ct", "Pl", "Way", "Pkwy"];

/// Optional unit designations appended to some street lines (the `&` ones exercise HL7 `\T\`).
pub const UNITS: &[&str] = &["Apt 2", "Apt 4B", "Unit 7", "Apt 12", "Lot 3 & 4", "Ste 100", "Unit A&B"];

/// Preferred languages (ISO 639-1, or 639-2 where no 639-1 code exists) with base weights.
pub const LANGUAGES: &[(&str, f64)] = &[
    ("en", 0.85),
    ("es", 0.09),
    ("pl", 0.01),
    ("ar", 0.01),
    ("so", 0.01),
    ("hmn", 0.01),
    ("vi", 0.005),
    ("zh", 0.005),
    ("fr", 0.005),
    ("asl", 0.005),
];

/// Insurance types.
pub const INSURANCE: &[&str] = &["Medicare", "Medicaid", "Commercial", "Self-pay", "Other"];

/// Codes used for `unknown_department` defects (not in any hospital's metadata).
pub const UNKNOWN_DEPTS: &[&str] = &["XRAY9", "ONC", "EDX", "MED2", "NICU", "PSYCH", "OR", "REHAB"];

/// Codes used for `invalid_sex_code` defects (not in HL7 table 0001).
pub const INVALID_SEX: &[&str] = &["X", "female", "male", "2", "1", "FEM", "?"];
