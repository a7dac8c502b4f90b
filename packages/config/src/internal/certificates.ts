import type * as z from 'zod';

/** What one `relay.certificates[]` entry holds before its files are checked. */
interface CertificateEntry {
  cert?: string | undefined;
  key?: string | undefined;
  pfx?: string | undefined;
  passphrase?: string | undefined;
}

/**
 * A certificate is a PEM pair (`cert` + `key`) or a PKCS#12 file (`pfx`, optional
 * `passphrase`), never a mix: a half-given pair would otherwise be served as something else.
 */
export function certificateShape(v: CertificateEntry, ctx: z.RefinementCtx): void {
  const issue = (path: string[], message: string) =>
    ctx.addIssue({ code: 'custom', path, message });
  if (v.pfx !== undefined) {
    for (const k of ['cert', 'key'] as const)
      if (v[k] !== undefined) issue([k], 'use either pfx or cert and key, not both');
    return;
  }
  if (v.passphrase !== undefined) issue(['passphrase'], 'applies only to pfx');
  if (v.cert === undefined && v.key === undefined)
    issue([], 'needs cert and key (PEM files) or pfx (a PKCS#12 file)');
  else if (v.cert === undefined) issue(['cert'], 'is required');
  else if (v.key === undefined) issue(['key'], 'is required');
}
