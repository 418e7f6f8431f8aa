"""Trust: keys, DSSE envelopes, in-toto statements, SLSA provenance and VSAs, sigstore, policy.

Builders here are pure (time and inputs are arguments); reading files and verifying signatures
happen at the edges (`keys`, `dsse`, `sigstore_bundle`, `policy`). docs/trust.md explains the
model. This package imports nothing itself: each command loads the modules it needs (`verify`
never loads sigstore unless a bundle or a keyless signer is involved; importing sigstore costs a
few hundred milliseconds).
"""
