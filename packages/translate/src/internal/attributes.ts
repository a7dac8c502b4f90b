/** How an attribute's value carries URLs. */
export const enum AttrKind {
  None,
  /** One URL (`href`, `src`, `action`, …, `data-*` that start with one). */
  Url,
  /** `srcset`: URLs with width/density descriptors, comma-separated. */
  Srcset,
  /** Space-separated URLs (`ping`, `archive`). */
  UrlList,
  /** CSS (`style`). */
  Css,
  /** JavaScript (`on*`), only with `scripts`. */
  Script,
  /** `<meta content>`: a refresh or a URL, depending on `http-equiv`. */
  MetaContent,
  /** `<meta http-equiv>` / `<meta charset>`: remembered for the tag's end. */
  MetaHttpEquiv,
  MetaCharset,
}

// Attribute names whose meaning depends on the element.
const OBJECT_DATA = -1;
const PARAM_VALUE = -2;
const META_CONTENT = -3;
const META_HTTP_EQUIV = -4;
const META_CHARSET = -5;

/**
 * The URL-bearing attributes of HTML and SVG, as the reference's "Translate URLs in
 * Application Body" needs them: one lookup per attribute name.
 */
const BY_NAME = new Map<string, number>([
  // One URL, on whatever element they appear (HTML, SVG, legacy).
  ['href', AttrKind.Url], // a, area, link, base; SVG a, use, image, pattern, textPath, feImage, script
  ['xlink:href', AttrKind.Url], // SVG 1.1
  ['src', AttrKind.Url], // img, script, iframe, frame, embed, source, track, video, audio, input type=image
  ['action', AttrKind.Url], // form
  ['formaction', AttrKind.Url], // button, input
  ['poster', AttrKind.Url], // video
  ['background', AttrKind.Url], // body, table, td, th (legacy)
  ['longdesc', AttrKind.Url], // img, iframe, frame
  ['lowsrc', AttrKind.Url], // img (legacy)
  ['dynsrc', AttrKind.Url], // img (legacy)
  ['cite', AttrKind.Url], // blockquote, q, del, ins
  ['manifest', AttrKind.Url], // html
  ['profile', AttrKind.Url], // head (legacy)
  ['codebase', AttrKind.Url], // object, applet
  ['icon', AttrKind.Url], // command, menuitem
  ['itemtype', AttrKind.Url], // microdata vocabulary URL
  ['style', AttrKind.Css],
  ['srcset', AttrKind.Srcset],
  ['imagesrcset', AttrKind.Srcset], // link rel=preload
  ['data-srcset', AttrKind.Srcset],
  ['ping', AttrKind.UrlList], // a, area
  ['archive', AttrKind.UrlList], // object, applet
  ['data', OBJECT_DATA],
  ['value', PARAM_VALUE],
  ['content', META_CONTENT],
  ['http-equiv', META_HTTP_EQUIV],
  ['charset', META_CHARSET],
]);

/**
 * How an attribute carries URLs: every attribute whose value is a URL, a URL list, a srcset,
 * CSS, or (with `scripts`) script. Names are lower case.
 */
export function classifyAttribute(tag: string, name: string, scripts: boolean): AttrKind {
  const kind = BY_NAME.get(name);
  if (kind !== undefined) {
    if (kind >= 0) return kind;
    switch (kind) {
      case OBJECT_DATA:
        return tag === 'object' ? AttrKind.Url : AttrKind.None;
      case PARAM_VALUE:
        // <param name="movie" value="http://…">: translated only if it starts with a mapped URL.
        return tag === 'param' ? AttrKind.Url : AttrKind.None;
      case META_CONTENT:
        return tag === 'meta' ? AttrKind.MetaContent : AttrKind.None;
      case META_HTTP_EQUIV:
        return tag === 'meta' ? AttrKind.MetaHttpEquiv : AttrKind.None;
      default:
        return tag === 'meta' ? AttrKind.MetaCharset : AttrKind.None;
    }
  }
  // data-src, data-background, data-href, data-url, …: translated only if the value starts
  // with a mapped URL, so data-note="see http://…" stays.
  const c0 = name.charCodeAt(0);
  if (c0 === 0x64 && name.startsWith('data-')) return AttrKind.Url;
  if (scripts && c0 === 0x6f && name.charCodeAt(1) === 0x6e && name.length > 2)
    return AttrKind.Script;
  return AttrKind.None;
}

// Candidates by (length, first letter, last letter), so most attribute names (class, id,
// title, aria-*, …) are ruled out without taking them out of the input.
const CANDIDATES = new Map<number, string[]>();
const keyOf = (length: number, first: number, last: number) =>
  (length << 16) | ((first | 0x20) << 8) | (last | 0x20);
for (const name of BY_NAME.keys()) {
  const key = keyOf(name.length, name.charCodeAt(0), name.charCodeAt(name.length - 1));
  CANDIDATES.set(key, [...(CANDIDATES.get(key) ?? []), name]);
}

function equalsIgnoreCase(s: string, start: number, name: string): boolean {
  for (let i = 0; i < name.length; i++) {
    let c = s.charCodeAt(start + i);
    if (c >= 0x41 && c <= 0x5a) c |= 0x20;
    if (c !== name.charCodeAt(i)) return false;
  }
  return true;
}

/** {@link classifyAttribute} on the name at `s[start, end)`, without copying it. */
export function classifyAttributeAt(
  tag: string,
  s: string,
  start: number,
  end: number,
  scripts: boolean,
): AttrKind {
  const length = end - start;
  if (length <= 0) return AttrKind.None;
  const c0 = s.charCodeAt(start);
  const list = CANDIDATES.get(keyOf(length, c0, s.charCodeAt(end - 1)));
  if (list) {
    for (const name of list)
      if (equalsIgnoreCase(s, start, name)) return classifyAttribute(tag, name, scripts);
  }
  if ((c0 | 0x20) === 0x64 && length > 5 && equalsIgnoreCase(s, start, 'data-'))
    return AttrKind.Url;
  if (scripts && length > 2 && (c0 | 0x20) === 0x6f && (s.charCodeAt(start + 1) | 0x20) === 0x6e)
    return AttrKind.Script;
  return AttrKind.None;
}

/** Tags whose name matters to the rewriter, by length: everything else is never copied out. */
const INTERESTING_TAGS = new Set([
  'meta',
  'object',
  'param',
  'style',
  'script',
  'svg',
  'math',
  'foreignobject',
  'desc',
  'title',
  'mi',
  'mo',
  'mn',
  'ms',
  'mtext',
  'annotation-xml',
]);
const TAG_KEYS = new Set(
  [...INTERESTING_TAGS].map((t) => keyOf(t.length, t.charCodeAt(0), t.charCodeAt(t.length - 1))),
);

/** The lower-case name of a tag at `s[start, end)` if the rewriter cares about it, else ''. */
export function interestingTag(s: string, start: number, end: number): string {
  const length = end - start;
  if (length <= 0 || !TAG_KEYS.has(keyOf(length, s.charCodeAt(start), s.charCodeAt(end - 1))))
    return '';
  const name = s.slice(start, end).toLowerCase();
  return INTERESTING_TAGS.has(name) ? name : '';
}
