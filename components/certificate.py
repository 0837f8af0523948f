"""An ACM certificate for the environment's hostname, validated through DNS in its Route 53 zone.

Separate from the alias record (`components/dns.py`): the load balancer's TLS listener needs the
*validated* certificate, and the alias record needs the load balancer, so certificate -> load
balancer -> record is the only order without a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_aws as aws

# Route 53 answers within about 60 s; a short TTL keeps a re-validation from waiting on caches.
VALIDATION_RECORD_TTL = 60


@dataclass(frozen=True)
class CertificateArgs:
    hostname: str
    hosted_zone_id: pulumi.Input[str]


class Certificate(pulumi.ComponentResource):
    certificate_arn: pulumi.Output[str]

    def __init__(self, name: str, args: CertificateArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("eks-istio-shop:certificate:Certificate", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        certificate = aws.acm.Certificate(
            f"{name}-cert",
            domain_name=args.hostname,
            validation_method="DNS",
            tags={"Name": args.hostname},
            opts=child,
        )
        # One hostname, no alternative names: exactly one validation option.
        option = certificate.domain_validation_options[0]
        record = aws.route53.Record(
            f"{name}-validation-record",
            zone_id=args.hosted_zone_id,
            name=option.resource_record_name,
            type=option.resource_record_type,
            records=[option.resource_record_value],
            ttl=VALIDATION_RECORD_TTL,
            # ACM asks every certificate for this name in the account for the same record; one left
            # by an earlier stack or certificate must not fail the create.
            allow_overwrite=True,
            opts=child,
        )
        validation = aws.acm.CertificateValidation(
            f"{name}-validation",
            certificate_arn=certificate.arn,
            validation_record_fqdns=[record.fqdn],
            opts=child,
        )

        # The validation's ARN, not the certificate's: listeners must wait until ACM has issued it.
        self.certificate_arn = validation.certificate_arn
        self.register_outputs({"certificateArn": self.certificate_arn})
