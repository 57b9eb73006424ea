"""Publishing's data: the SSH keys' and an app's source repository's event payloads, and the
package files generated for a build (PKGBUILD, .SRCINFO, metadata.yml)."""
