package server

import "context"

// SecretStore keeps project secrets, sealed (see package secretbox): the
// store never sees a plaintext value.
type SecretStore interface {
	// PutSecret stores a sealed value under project/name, creating the
	// project on first use and replacing an earlier value.
	PutSecret(ctx context.Context, project, name string, sealed []byte) error
	// DeleteSecret removes a secret, or returns ENOTFOUND.
	DeleteSecret(ctx context.Context, project, name string) error
	// SecretNames lists a project's secret names, sorted.
	SecretNames(ctx context.Context, project string) ([]string, error)
	// SealedSecrets returns the sealed values of the named secrets that
	// exist.
	SealedSecrets(ctx context.Context, project string, names []string) (map[string][]byte, error)
}
