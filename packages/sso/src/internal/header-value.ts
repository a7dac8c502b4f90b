/** Most bytes of one header value this package sets; larger values are cut or left out. */
export const MAX_HEADER_VALUE_BYTES = 8 * 1024;

// C0 controls except TAB, and DEL: Node refuses them in header values, and CR/LF would split
// the header.
// eslint-disable-next-line no-control-regex
const CONTROLS = /[\x00-\x08\x0a-\x1f\x7f]/g;
// eslint-disable-next-line no-control-regex
const HAS_CONTROL = /[\x00-\x08\x0a-\x1f\x7f]/;
// eslint-disable-next-line no-control-regex
const NON_ASCII = /[^\x00-\x7f]/;

/** A substituted value made safe: controls removed (TAB kept), then trimmed. */
export function cleanValue(value: string): string {
  return (HAS_CONTROL.test(value) ? value.replace(CONTROLS, '') : value).trim();
}

/** Whether `text` holds a character a header value may not (controls other than TAB). */
export function hasControl(text: string): boolean {
  return HAS_CONTROL.test(text);
}

/**
 * The header string Node sends as the UTF-8 bytes of `value`: Node writes header strings as
 * latin1, so each UTF-8 byte becomes one char. ASCII comes back unchanged.
 */
export function asUtf8Bytes(value: string): string {
  return NON_ASCII.test(value) ? Buffer.from(value, 'utf8').toString('latin1') : value;
}
