// Package kubeschema writes the JSON schemas kubeconform validates manifests
// against, from sources that arrive through the Go module proxy instead of
// being downloaded at run time: the OpenAPI (v2) document of a Kubernetes
// release (api/openapi-spec/swagger.json in the k8s.io/kubernetes module) and
// CustomResourceDefinitions (e.g. the Prometheus Operator's ServiceMonitor).
//
// The layout is kubeconform's default file name, {{ .ResourceKind }}{{
// .KindSuffix }}.json (deployment-apps-v1.json, service-v1.json), so
// `kubeconform -schema-location DIR/{{ .ResourceKind }}{{ .KindSuffix }}.json`
// finds them. The schemas are strict, as kubectl's validation is: an object
// with declared properties accepts no others, so a misspelt field fails.
package kubeschema

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"
)

// DefinitionsFile holds every definition of the OpenAPI document; each kind's
// file refers into it.
const DefinitionsFile = "_definitions.json"

// quantityPattern is the serialization format of a Kubernetes quantity: a
// decimal number, then a binary (Ki…Ei), decimal (n, u, m, k, M…E) or
// exponent suffix.
const quantityPattern = `^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)(([KMGTPE]i)|[numkMGTPE]|([eE][+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)))?$`

// FileName is kubeconform's name for a kind's schema: the kind in lower case,
// the first label of the API group, the version.
func FileName(kind, group, version string) string {
	suffix := "-" + strings.ToLower(version)
	if group != "" {
		suffix = "-" + strings.ToLower(strings.Split(group, ".")[0]) + suffix
	}
	return strings.ToLower(kind) + suffix + ".json"
}

// FromSwagger writes DefinitionsFile and one file per kind into dir, and
// returns how many kinds it wrote.
func FromSwagger(swagger []byte, dir string) (int, error) {
	var doc struct {
		Definitions map[string]map[string]any `json:"definitions"`
	}
	if err := json.Unmarshal(swagger, &doc); err != nil {
		return 0, fmt.Errorf("OpenAPI document: %w", err)
	}
	if len(doc.Definitions) == 0 {
		return 0, errors.New("OpenAPI document: no definitions")
	}
	defs := make(map[string]any, len(doc.Definitions))
	for name, d := range doc.Definitions {
		if strings.HasSuffix(name, ".api.resource.Quantity") {
			// A quantity is written as a string (250m, 1Gi) or a bare number (cpu: 1).
			q := oneOf(d, "string", "number")
			q["oneOf"].([]any)[0].(map[string]any)["pattern"] = quantityPattern
			defs[name] = q
			continue
		}
		defs[name] = strict(d)
	}
	if err := writeJSON(filepath.Join(dir, DefinitionsFile), map[string]any{"definitions": defs}); err != nil {
		return 0, err
	}
	kinds := 0
	for name, d := range doc.Definitions {
		gvks, _ := d["x-kubernetes-group-version-kind"].([]any)
		for _, g := range gvks {
			gvk, _ := g.(map[string]any)
			kind, _ := gvk["kind"].(string)
			group, _ := gvk["group"].(string)
			version, _ := gvk["version"].(string)
			if kind == "" || version == "" {
				continue
			}
			ref := map[string]any{"$ref": DefinitionsFile + "#/definitions/" + name}
			if err := writeJSON(filepath.Join(dir, FileName(kind, group, version)), ref); err != nil {
				return kinds, err
			}
			kinds++
		}
	}
	return kinds, nil
}

// FromCRD writes a standalone schema for every version a
// CustomResourceDefinition (YAML) serves, and returns the file names.
func FromCRD(crd []byte, dir string) ([]string, error) {
	var c struct {
		Kind string `yaml:"kind"`
		Spec struct {
			Group string `yaml:"group"`
			Names struct {
				Kind string `yaml:"kind"`
			} `yaml:"names"`
			Versions []struct {
				Name   string `yaml:"name"`
				Served bool   `yaml:"served"`
				Schema struct {
					OpenAPIV3Schema map[string]any `yaml:"openAPIV3Schema"`
				} `yaml:"schema"`
			} `yaml:"versions"`
		} `yaml:"spec"`
	}
	if err := yaml.Unmarshal(crd, &c); err != nil {
		return nil, fmt.Errorf("CRD: %w", err)
	}
	if c.Kind != "CustomResourceDefinition" {
		return nil, fmt.Errorf("not a CustomResourceDefinition: kind %q", c.Kind)
	}
	var files []string
	for _, v := range c.Spec.Versions {
		if !v.Served || v.Schema.OpenAPIV3Schema == nil {
			continue
		}
		name := FileName(c.Spec.Names.Kind, c.Spec.Group, v.Name)
		if err := writeJSON(filepath.Join(dir, name), strict(v.Schema.OpenAPIV3Schema)); err != nil {
			return files, err
		}
		files = append(files, name)
	}
	if len(files) == 0 {
		return nil, errors.New("CRD: no served version with a schema")
	}
	return files, nil
}

// strict returns a copy of an OpenAPI schema as a JSON schema (draft 4, what
// kubeconform compiles with) that refuses unknown fields:
//   - an object with properties gets additionalProperties: false, unless it
//     says otherwise or preserves unknown fields;
//   - int-or-string (format, or the x-kubernetes- marker) becomes a oneOf;
//   - nullable: true lets null through.
func strict(v any) any {
	switch t := v.(type) {
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = strict(e)
		}
		return out
	case map[string]any:
		if t["format"] == "int-or-string" || t["x-kubernetes-int-or-string"] == true {
			return oneOf(t, "string", "integer")
		}
		out := make(map[string]any, len(t)+1)
		for k, e := range t {
			if k == "properties" || k == "definitions" || k == "patternProperties" {
				// A map of names to schemas: keep the names, convert the schemas.
				if m, ok := e.(map[string]any); ok {
					conv := make(map[string]any, len(m))
					for name, s := range m {
						conv[name] = strict(s)
					}
					out[k] = conv
					continue
				}
			}
			out[k] = strict(e)
		}
		_, hasProps := t["properties"]
		_, hasAdditional := t["additionalProperties"]
		if hasProps && !hasAdditional && t["x-kubernetes-preserve-unknown-fields"] != true {
			out["additionalProperties"] = false
		}
		if t["nullable"] == true {
			if typ, ok := t["type"].(string); ok {
				out["type"] = []any{typ, "null"}
			}
		}
		return out
	default:
		return v
	}
}

// oneOf is a schema for any of the types, keeping the original's description.
func oneOf(orig map[string]any, types ...string) map[string]any {
	alts := make([]any, len(types))
	for i, t := range types {
		alts[i] = map[string]any{"type": t}
	}
	out := map[string]any{"oneOf": alts}
	if d, ok := orig["description"].(string); ok {
		out["description"] = d
	}
	return out
}

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
