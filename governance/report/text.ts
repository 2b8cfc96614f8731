// buf's text shape, exactly: `path:line:column:message` for each breaking finding (see buf.ts).
export { bufText as text } from "./buf.js";
