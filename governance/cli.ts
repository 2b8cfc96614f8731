// The CLI's former home, kept so that code importing it keeps working: `main` (the dispatcher) now
// lives in cli/main.ts, `checkBreaking` in check.ts and the `breaking` command in breaking.ts. Nothing
// in grabbit imports this file (that would close an import cycle through cli/main.ts); new code
// imports from those modules.
export { main, type Io } from "../cli/main.js";
export { checkBreaking, type BreakingOptions } from "./check.js";
