// Reading generated files in tests: the formatter breaks a long signature over lines; `flat` joins
// it back, so an assertion can quote a declaration on one line whatever the width made of it.

/** `text` with each line break (and the indentation and trailing comma around it) undone. */
export function flat(text: string): string {
  return text
    .replace(/,\s*\n\s*\}/g, " }")
    .replace(/,\s*\n\s*([)\]>])/g, "$1")
    .replace(/([([<])\s*\n\s*/g, "$1")
    .replace(/\s*\n\s*/g, " ");
}
