"""An ACM certificate for the environment's hostname (and more names, such as a wildcard for app stacks),
validated through DNS in its Route 53 zone.

Separate from the alias record (`components/dns.py`): the load balancer's TLS listener needs the
*validated* certificate, and the alias record needs the load balancer, so certificate -> load
balancer -> record is the only order without a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import pulumi
import pulumi_aws as aws

# Route 53 answers within about 60 s; a short TTL keeps a re-validation from waiting on caches.
VALIDATION_RECORD_TTL = 60


def validation_names(names: Sequence[str]) -> list[str]:
    """The names ACM asks a validation record for, each once: `*.example.com` is validated by the same
    record as `example.com` (ACM's DNS validation strips the wildcard label)."""
    found: list[str] = []
    for name in names:
        base = name[2:] if name.startswith("*.") else name
        if base not in found:
            found.append(base)
    return found


@dataclass(frozen=True)
class CertificateArgs:
    hostname: str
    hosted_zone_id: pulumi.Input[str]
    # More names on the same certificate, e.g. `*.<domain>` for app stacks behind the same listener.
    subject_alternative_names: Sequence[str] = ()


class Certificate(pulumi.ComponentResource):
    certificate_arn: pulumi.Output[str]

    def __init__(self, name: str, args: CertificateArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("eks-istio-shop:certificate:Certificate", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        alternative_names = [n for n in args.subject_alternative_names if n != args.hostname]
        certificate = aws.acm.Certificate(
            f"{name}-cert",
            domain_name=args.hostname,
            subject_alternative_names=alternative_names or None,
            validation_method="DNS",
            tags={"Name": args.hostname},
            opts=child,
        )
        records = []
        for index, validated in enumerate(validation_names([args.hostname, *alternative_names])):
            # The provider returns the options as a set: find each name's by its domain, not by position.
            option = certificate.domain_validation_options.apply(
                lambda options, validated=validated: next(o for o in options if o.domain_name in (validated, f"*.{validated}")))
            records.append(aws.route53.Record(
                # The first keeps the name it had when the certificate had one name only.
                f"{name}-validation-record" + (f"-{index}" if index else ""),
                zone_id=args.hosted_zone_id,
                name=option.resource_record_name,
                type=option.resource_record_type,
                records=[option.resource_record_value],
                ttl=VALIDATION_RECORD_TTL,
                # ACM asks every certificate for this name in the account for the same record; one left
                # by an earlier stack or certificate must not fail the create.
                allow_overwrite=True,
                opts=child,
            ))
        validation = aws.acm.CertificateValidation(
            f"{name}-validation",
            certificate_arn=certificate.arn,
            validation_record_fqdns=[record.fqdn for record in records],
            opts=child,
        )

        # The validation's ARN, not the certificate's: listeners must wait until ACM has issued it.
        self.certificate_arn = validation.certificate_arn
        self.register_outputs({"certificateArn": self.certificate_arn})
