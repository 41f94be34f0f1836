//! Characters that show nothing, or turn the text around them: the chatter's handles and
//! rooms and ABChat's names refuse them (a name with one reads like another name).

/// Whether `c` shows nothing, or turns the text around it (Unicode's format characters and
/// the like: zero-width spaces and joiners, bidirectional overrides, variation selectors,
/// tags, fillers): a name with one reads like another name, or turns the line that names it.
pub(crate) fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
        | '\u{FFA0}' | '\u{FFF0}'..='\u{FFFB}' | '\u{E0000}'..='\u{E0FFF}'
        // Format controls of other scripts (musical beams, shorthand overlaps, hieroglyph
        // joiners), and the braille blank, a letter that prints as a space.
        | '\u{2800}' | '\u{1D173}'..='\u{1D17A}' | '\u{1BCA0}'..='\u{1BCA3}'
        | '\u{13430}'..='\u{1343F}')
}
