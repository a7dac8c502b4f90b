/** A location in a parsed document: map keys and list indexes. */
export type DocPath = readonly (string | number)[];

const IDENT = /^[A-Za-z_$][A-Za-z0-9_$-]*$/;

/**
 * The path as people read it: `apps[2].internalUrl`. Keys that are not plain names are
 * quoted: `relay["odd key"]`.
 */
export function formatPath(path: DocPath): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (IDENT.test(seg)) out += out ? `.${seg}` : seg;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

/** True when `path` is `prefix` or lies under it. */
export function isUnder(path: DocPath, prefix: DocPath): boolean {
  return prefix.length <= path.length && prefix.every((seg, i) => String(seg) === String(path[i]));
}
