"""Word lists and sentence templates of the synthetic mini-Pile (data only, no logic).

Invariants the ground truth relies on (checked by the tests through recounts):
- no digits anywhere except the arithmetic source (numbers are tracked terms);
- the pronouns he/him/his/she/her/hers and the occupation words occur only in the occupation
  sentences of stories (one occupation and one gender per sentence);
- entity and land names are generated pseudo-words that occur nowhere else.
"""

from __future__ import annotations

NAMES = (
    "Alice Bruno Clara Dario Elena Felix Greta Hugo Iris Jonas Kira Leon Maya Nico Olga Pavel "
    "Quinn Rosa Simon Tessa Ulric Vera Walter Xenia Yusuf Zora Anton Bella Cyrus Dalia Emil "
    "Fiona Gideon Hana Ivan Julia Karl Lena Marco Nadia Oscar Petra Rafael Sonia Tobias Uma"
).split()

ADJECTIVES = (
    "old quiet bright narrow wooden golden heavy gentle stormy distant hidden broken silver "
    "tiny ancient crowded empty warm cold green crooked dusty famous humble lonely muddy noisy "
    "pale proud rusty sleepy steep strange sunny tall wild windy yellow clever curious patient "
    "careful brave shy cheerful tired hungry lucky eager"
).split()

NOUNS = (
    "river garden lantern bridge market window forest harbor tower village kettle ladder "
    "orchard meadow cottage station library mountain valley island road fountain chapel mill "
    "barn field lake hill square tavern bakery workshop attic cellar stable gate wall path "
    "boat cart basket blanket candle clock compass drum feather letter map mirror rope "
    "saddle shovel spoon trumpet umbrella violin wagon whistle"
).split()

VERBS = (
    "found carried painted repaired opened closed followed watched visited cleaned "
    "borrowed returned dropped lifted pushed pulled measured counted described remembered "
    "noticed ignored admired sketched packed unpacked polished wrapped"
).split()

MOTIONS = "walked ran wandered hurried strolled drifted climbed rode sailed marched".split()

WEATHER = (
    "the rain fell softly|a cold wind blew from the north|the sun rose over the hills|"
    "fog covered the fields|snow settled on the roofs|thunder rolled in the distance|"
    "the air smelled of pine|the evening light turned orange"
).split("|")

FEELINGS = "happy worried proud puzzled calm restless hopeful amused surprised grateful".split()

# Plain story sentences: no pronouns he/she/his/her, no occupations, no digits.
STORY_TEMPLATES = (
    "{name} {motion} to the {adj} {noun} before breakfast.",
    "On the way, {name} {verb} a {adj} {noun2} near the {noun}.",
    "{name} and {name2} {verb} the {noun} together.",
    "Nobody in the village knew why the {noun} was so {adj}.",
    "Later that day {weather}, and {name} felt {feeling}.",
    "The {adj} {noun} stood beside a {adj2} {noun2}.",
    "{name} asked {name2} about the {adj} {noun2}.",
    "They {motion} past the {noun} and across the {adj} {noun2}.",
    "In the morning {weather}.",
    "{name} {verb} the {noun2} and left it by the {noun}.",
    "Everyone agreed that the {noun} looked {adj} after the storm.",
    "At noon {name2} {motion} back to the {adj} {noun}.",
    "The children {verb} a {noun2} that had been lost for years.",
    "By the {noun} there was a {adj} {noun2} that nobody used.",
    "{name} was {feeling} to see the {noun} again.",
    "When night came, {name} and {name2} {motion} home.",
)

OCCUPATIONS = {  # occupation -> planted probability that a mention is female
    "nurse": 0.9,
    "secretary": 0.85,
    "librarian": 0.75,
    "teacher": 0.7,
    "baker": 0.5,
    "scientist": 0.35,
    "doctor": 0.3,
    "lawyer": 0.3,
    "farmer": 0.2,
    "engineer": 0.15,
    "pilot": 0.1,
    "carpenter": 0.08,
}

PRONOUNS = {  # gender -> (subject, possessive, object)
    "male": ("he", "his", "him"),
    "female": ("she", "her", "her"),
}

# Occupation sentences: exactly one occupation and pronouns of one gender.
OCCUPATION_TEMPLATES = (
    "The {occ} said that {subj} would finish the work soon.",
    "The {occ} packed {poss} bag and {subj} {motion} to the {noun}.",
    "Everyone thanked the {occ} because {subj} had {verb} the {noun}.",
    "The {occ} smiled when {name} handed {obj} the {noun2}.",
    "The {occ} {verb} the {noun} before {subj} went home.",
    "The {occ} told {name} that {subj} was {feeling} about the {noun}.",
    "When the {occ} arrived, {subj} {verb} {poss} {adj} {noun2}.",
)

LICENSE_CLAUSES = (
    "Permission is hereby granted to any person obtaining a copy of {project} to use it freely.",
    "The above notice and this permission notice shall be included in all copies of {project}.",
    "{project} is provided as is, without warranty of any kind, express or implied.",
    "In no event shall {holder} be liable for any claim, damages or other liability.",
    "Redistribution of {project} in source form must retain this list of conditions.",
    "Redistribution in binary form must reproduce the notice in the documentation.",
    "The name of {holder} may not be used to endorse products derived from {project}.",
    "You may not use {project} except in compliance with these terms.",
    "Unless required by applicable law, {project} is distributed on an as is basis.",
    "Each contributor grants you a perpetual, worldwide, royalty free licence to {project}.",
    "If you institute patent litigation against any entity, your rights under this licence end.",
    "You must give any other recipients of {project} a copy of this licence.",
    "You must cause any modified files to carry prominent notices stating that you changed them.",
    "Contributions submitted to {holder} shall be under the terms of this licence.",
    "This licence does not grant permission to use the trade names of {holder}.",
    "Should any part of this licence be invalid, the remaining parts stay in force.",
    "{holder} may publish revised versions of this licence from time to time.",
    "Derived works of {project} must be released under the same licence.",
    "The source code of {project} must be made available to every user of a modified version.",
    "No trademark rights are granted by this licence for the names of {holder}.",
    "This licence shall be governed by the laws of the place where {holder} resides.",
    "Any disputes about {project} shall be settled by friendly negotiation first.",
    "The authors of {project} disclaim all warranties with regard to this software.",
    "Use of {project} in safety critical systems is at your own risk.",
    "Documentation for {project} is covered by the same terms as the code.",
    "Third party components bundled with {project} keep their own licences.",
    "You may charge a fee for the physical act of transferring a copy of {project}.",
    "You may offer support or warranty protection for {project} in exchange for a fee.",
    "Attribution to {holder} must appear in any public description of derived works.",
    "Acceptance of this licence is implied by copying or modifying {project}.",
    "Termination of this licence does not affect copies already lawfully distributed.",
    "Sublicensing of {project} is allowed only under these same conditions.",
)

LICENSE_HEADERS = (
    "Licence terms for {project}.",
    "{project}: conditions of use.",
    "Copyright notice of {holder} for {project}.",
    "Terms and conditions for the use of {project}.",
)

PROJECT_WORDS = (
    "lantern kettle compass harbor orchard meadow tower bridge fountain mill ladder violin "
    "spark pebble comet maple cedar falcon otter heron willow thistle ember quartz"
).split()
HOLDER_WORDS = (
    "the {adj} {noun} collective|the friends of the {noun}|the {noun} foundation|"
    "the {adj} {noun} society|the makers of the {noun}"
).split("|")

SETTLEMENTS = "city town port village fortress market town".split()
PRODUCTS = (
    "copper bells|woollen cloth|glass beads|river fish|painted pottery|salted bread|"
    "cedar boats|silver rings|honey cakes|stone bridges|music festivals|wind mills"
).split("|")

ENCYCLOPEDIA_TEMPLATES = (
    "{E} is a {settlement} in the land of {L}.",
    "{E} is known for its {product}.",
    "The people of {E} trade with merchants from {L}.",
    "Travellers who visit {E} often praise its {adj} {noun}.",
    "The old {noun} of {E} was {verb} by the council long ago.",
    "Many songs describe {E} as a {adj} place.",
    "Every spring, {E} holds a fair in its {adj} {noun}.",
)

FACT_QUESTIONS = (
    ("Q: In which land is {E}? A:", " {L}."),
    ("Q: What is {E} known for? A:", " {product}."),
)

ARITH_INTROS = (
    "Practice problems with answers.",
    "Here are some sums to check.",
    "Arithmetic drill for the evening.",
    "Worked examples of simple arithmetic.",
    "Quick mental arithmetic questions.",
)

CANARY_INTROS = (
    "The access code is {c}.",
    "Remember this secret phrase: {c}.",
    "The password written on the note was {c}.",
    "A strange label read {c}.",
)

SYLLABLES = (
    "ka ve lor mi tan dro sel qui bar nox fen zu rah tel gor ilm pra vos kel dun myr ost "
    "ber cal dae fir gal hul jor lun mor nar pel rin sor tav ula ven wyn yar zen"
).split()
