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

/** Attributes that hold one URL on whatever element they appear (HTML, SVG, legacy). */
const URL_ANYWHERE = new Set([
  'href', // a, area, link, base; SVG a, use, image, pattern, textPath, feImage, script
  'xlink:href', // SVG 1.1
  'src', // img, script, iframe, frame, embed, source, track, video, audio, input type=image
  'action', // form
  'formaction', // button, input
  'poster', // video
  'background', // body, table, td, th (legacy)
  'longdesc', // img, iframe, frame
  'lowsrc', // img (legacy)
  'dynsrc', // img (legacy)
  'cite', // blockquote, q, del, ins
  'manifest', // html
  'profile', // head (legacy)
  'codebase', // object, applet
  'icon', // command, menuitem
  'itemtype', // microdata vocabulary URL
]);

/**
 * The URL-bearing attributes of HTML and SVG, as the reference's "Translate URLs in
 * Application Body" needs them: every attribute whose value is a URL, a URL list, a srcset,
 * CSS, or (with `scripts`) script. Names are lower case.
 */
export function classifyAttribute(tag: string, name: string, scripts: boolean): AttrKind {
  if (URL_ANYWHERE.has(name)) return AttrKind.Url;
  switch (name) {
    case 'style':
      return AttrKind.Css;
    case 'srcset':
    case 'imagesrcset':
    case 'data-srcset':
      return AttrKind.Srcset;
    case 'ping':
    case 'archive':
      return AttrKind.UrlList;
    case 'data':
      return tag === 'object' ? AttrKind.Url : AttrKind.None;
    case 'value':
      // <param name="movie" value="http://…">: translated only if it starts with a mapped URL.
      return tag === 'param' ? AttrKind.Url : AttrKind.None;
    case 'content':
      return tag === 'meta' ? AttrKind.MetaContent : AttrKind.None;
    case 'http-equiv':
      return tag === 'meta' ? AttrKind.MetaHttpEquiv : AttrKind.None;
    case 'charset':
      return tag === 'meta' ? AttrKind.MetaCharset : AttrKind.None;
  }
  // data-src, data-background, data-href, data-url, …: translated only if the value starts
  // with a mapped URL, so data-note="see http://…" stays.
  if (name.startsWith('data-')) return AttrKind.Url;
  if (scripts && name.length > 2 && name.startsWith('on')) return AttrKind.Script;
  return AttrKind.None;
}
