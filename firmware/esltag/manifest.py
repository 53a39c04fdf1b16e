# micropython-lib style manifest: freeze the esltag package into a firmware build.
metadata(version="0.1.0", description="storeedge e-ink tag firmware (serial ESL link)", license="MIT")

package("esltag", base_path="..")
