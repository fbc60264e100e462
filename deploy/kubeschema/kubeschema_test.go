package kubeschema

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"testing"
)

func TestFileName(t *testing.T) {
	for _, c := range []struct{ kind, group, version, want string }{
		{"Deployment", "apps", "v1", "deployment-apps-v1.json"},
		{"Service", "", "v1", "service-v1.json"},
		{"PodDisruptionBudget", "policy", "v1", "poddisruptionbudget-policy-v1.json"},
		{"ServiceMonitor", "monitoring.coreos.com", "v1", "servicemonitor-monitoring-v1.json"},
	} {
		if got := FileName(c.kind, c.group, c.version); got != c.want {
			t.Errorf("FileName(%s, %s, %s) = %s, want %s", c.kind, c.group, c.version, got, c.want)
		}
	}
}

func readJSON(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestFromSwagger(t *testing.T) {
	swagger := `{"definitions": {
	  "io.k8s.api.apps.v1.Thing": {"type": "object", "x-kubernetes-group-version-kind": [{"group": "apps", "kind": "Thing", "version": "v1"}],
	    "properties": {"port": {"format": "int-or-string", "type": "string"}, "size": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.api.resource.Quantity"},
	      "properties": {"type": "object", "properties": {"a": {"type": "string"}}},
	      "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {"b": {"type": "string"}}}}},
	  "io.k8s.apimachinery.pkg.api.resource.Quantity": {"type": "string", "description": "q"}}}`
	dir := t.TempDir()
	n, err := FromSwagger([]byte(swagger), dir)
	if err != nil || n != 1 {
		t.Fatalf("FromSwagger: %d kinds, %v", n, err)
	}
	if ref := readJSON(t, filepath.Join(dir, "thing-apps-v1.json")); ref["$ref"] != "_definitions.json#/definitions/io.k8s.api.apps.v1.Thing" {
		t.Errorf("kind file: %v", ref)
	}
	defs := readJSON(t, filepath.Join(dir, DefinitionsFile))["definitions"].(map[string]any)
	thing := defs["io.k8s.api.apps.v1.Thing"].(map[string]any)
	props := thing["properties"].(map[string]any)
	if thing["additionalProperties"] != false {
		t.Error("an object with properties must refuse unknown ones")
	}
	if _, ok := props["properties"].(map[string]any)["additionalProperties"]; !ok {
		t.Error("a property named properties is a schema like any other")
	}
	if _, ok := props["free"].(map[string]any)["additionalProperties"]; ok {
		t.Error("x-kubernetes-preserve-unknown-fields must stay open")
	}
	wantPort := map[string]any{"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "integer"}}}
	if !reflect.DeepEqual(props["port"], wantPort) {
		t.Errorf("int-or-string: %v", props["port"])
	}
	q := defs["io.k8s.apimachinery.pkg.api.resource.Quantity"].(map[string]any)
	if q["description"] != "q" || len(q["oneOf"].([]any)) != 2 {
		t.Errorf("quantity: %v", q)
	}
	re := regexp.MustCompile(quantityPattern)
	for s, ok := range map[string]bool{"250m": true, "1Gi": true, "0.5": true, "1e3": true, "128Mi": true, "lots": false, "1GB": false, "": false} {
		if re.MatchString(s) != ok {
			t.Errorf("quantity %q: valid %v, want %v", s, !ok, ok)
		}
	}
}

func TestFromCRD(t *testing.T) {
	crd := `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
spec:
  group: monitoring.coreos.com
  names: {kind: ServiceMonitor}
  versions:
    - name: v1
      served: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                port: {x-kubernetes-int-or-string: true, anyOf: [{type: integer}, {type: string}]}
                note: {type: string, nullable: true}
    - name: v0
      served: false
`
	dir := t.TempDir()
	files, err := FromCRD([]byte(crd), dir)
	if err != nil || len(files) != 1 || files[0] != "servicemonitor-monitoring-v1.json" {
		t.Fatalf("FromCRD: %v, %v", files, err)
	}
	s := readJSON(t, filepath.Join(dir, files[0]))
	spec := s["properties"].(map[string]any)["spec"].(map[string]any)
	if s["additionalProperties"] != false || spec["additionalProperties"] != false {
		t.Error("objects with properties must refuse unknown ones")
	}
	props := spec["properties"].(map[string]any)
	if _, ok := props["port"].(map[string]any)["oneOf"]; !ok {
		t.Errorf("int-or-string: %v", props["port"])
	}
	if !reflect.DeepEqual(props["note"].(map[string]any)["type"], []any{"string", "null"}) {
		t.Errorf("nullable: %v", props["note"])
	}
	if _, err := FromCRD([]byte("kind: ConfigMap\n"), dir); err == nil {
		t.Error("a ConfigMap is not a CRD")
	}
}
