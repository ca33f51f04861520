package k8s

import rbacv1 "k8s.io/api/rbac/v1"

// Rules are the permissions the provisioner needs in Config.Namespace,
// exactly: every call it makes is covered (TestRulesCoverEveryCall checks it
// against the calls the tests record) and every verb listed is used. The
// Helm chart grants them to vrsky's service account in a Role, not a
// ClusterRole, bound in the namespace the instances live in:
//
//	configmaps, services, networkpolicies: get, create, update, delete
//	statefulsets: get, list, create, update, delete
//	persistentvolumeclaims: delete (Remove deletes the instance's data)
//	pods: list (Health reads restart counts and why a pod is not ready)
//
// Creating a StatefulSet needs no right on pods: its controller makes them.
func Rules() []rbacv1.PolicyRule {
	crud := []string{"get", "create", "update", "delete"}
	return []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"configmaps", "services"}, Verbs: crud},
		{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"networkpolicies"}, Verbs: crud},
		{APIGroups: []string{"apps"}, Resources: []string{"statefulsets"}, Verbs: []string{"get", "list", "create", "update", "delete"}},
		{APIGroups: []string{""}, Resources: []string{"persistentvolumeclaims"}, Verbs: []string{"delete"}},
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"list"}},
	}
}
